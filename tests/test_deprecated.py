"""Old names keep working for this version (rnnkit.deprecated): every old flag
and setting in the table gives what its new name gives, after exactly one
warning line naming the new one; the old and new name together are refused
with one line (exit 2). The cases are generated from the table, so a rename
added there is tested here."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_main

from rnnkit import SampleConfig
from rnnkit.cli.main import build_parser
from rnnkit.cli.options import train_settings
from rnnkit.cli.parser import parse_args
from rnnkit.deprecated import OLD_JSON_KEYS, RENAMED_FLAGS, RENAMED_SETTINGS, old_json_keys, rewrite_argv
from rnnkit.errors import ConfigError
from rnnkit.tasks import named
from rnnkit.training.run_config import migrate

FORMAT1 = Path(__file__).parent / "data" / "format1"
POSITIONALS = {"train": ["PATH"], "lr-find": ["PATH"], "tune": ["PATH", "--space", "lr", "--trials", "2"],
               "sample": ["RUN"], "predict": ["RUN", "INPUT"], "report": ["RUN"], "bench": []}
RENAMES = [(command, old, new) for command, table in RENAMED_FLAGS.items() for old, new in table.items()]


def value_for(command: str, flag: str) -> str:
    """A value the flag ``flag`` of ``command`` takes, not its default."""
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    action = next(a for a in sub._actions if flag in a.option_strings)
    if action.type is int or action.metavar == "INT":
        return "7"
    return "3.5" if action.type is float or action.metavar == "FLOAT" else "x.json"


def warning(old: str, new: str) -> str:
    return f"warning: {old} is deprecated; use {new}\n"


def test_every_command_of_the_table_is_known_and_every_new_flag_exists():
    assert set(RENAMED_FLAGS) == set(POSITIONALS)
    for command, old, new in RENAMES:
        value_for(command, new)  # raises StopIteration for a flag the parser lacks
        with pytest.raises(StopIteration):
            value_for(command, old)  # the old name is no flag of the parser: the table alone takes it


@pytest.mark.parametrize("command,old,new", RENAMES, ids=[f"{c} {o}" for c, o, _ in RENAMES])
def test_an_old_flag_acts_as_the_new_one_after_one_warning(command, old, new, capsys):
    value = value_for(command, new)
    given = parse_args([command, *POSITIONALS[command], new, value])
    assert capsys.readouterr().err == ""
    for spelled in ([old, value], [f"{old}={value}"]):
        assert vars(parse_args([command, *POSITIONALS[command], *spelled])) == vars(given)
        assert capsys.readouterr().err == warning(old, new)
    if command in ("train", "lr-find", "tune"):
        assert train_settings(parse_args([command, *POSITIONALS[command], old, value])) == train_settings(given)


@pytest.mark.parametrize("command,old,new", RENAMES, ids=[f"{c} {o}" for c, o, _ in RENAMES])
def test_an_old_flag_beside_its_new_name_is_one_error(command, old, new):
    value = value_for(command, new)
    result = run_main(command, *POSITIONALS[command], old, value, new, value)
    assert result.returncode == 2
    assert result.stderr == f"rnnkit: error: {old} is the deprecated name of {new}; give only {new}\n"


def test_tokens_after_double_dash_are_values_and_other_commands_are_untouched(capsys):
    assert rewrite_argv(["sample", "RUN", "--", "--length"]) == ["sample", "RUN", "--", "--length"]
    assert rewrite_argv(["eval", "RUN", "--json"]) == ["eval", "RUN", "--json"]  # eval's --json is its switch
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("old,new", sorted(RENAMED_SETTINGS.items()))
def test_an_old_config_file_key_acts_as_the_new_one(old, new, tmp_path, capsys):
    settings = {}
    for name, key in (("old", old), ("new", new)):
        (tmp_path / f"{name}.json").write_text(json.dumps({key: 5}))
        settings[name] = train_settings(parse_args(["train", "PATH", "--config", str(tmp_path / f"{name}.json")]))
    assert settings["old"] == settings["new"] == {new: 5}
    assert capsys.readouterr().err == warning(f"--config {tmp_path / 'old.json'}: {old}", new)
    (tmp_path / "both.json").write_text(json.dumps({old: 5, new: 5}))
    with pytest.raises(ConfigError, match=f"{old} is the deprecated name of {new}; give only {new}"):
        train_settings(parse_args(["train", "PATH", "--config", str(tmp_path / "both.json")]))


def test_momentum_with_rmsprop_is_its_alpha(capsys):
    def settings(*flags):
        return train_settings(parse_args(["train", "PATH", "--optimizer", "rmsprop", *flags]))

    assert settings("--momentum", "0.95") == settings("--alpha", "0.95") == {"optimizer": "rmsprop", "alpha": 0.95}
    assert capsys.readouterr().err == warning("--momentum with --optimizer rmsprop", "--alpha")
    assert settings("--momentum", "1.5")["alpha"] == 0.99  # what the optimizer read from a momentum >= 1
    with pytest.raises(ConfigError, match="give only --alpha"):
        settings("--momentum", "0.95", "--alpha", "0.95")
    nesterov = train_settings(parse_args(["train", "PATH", "--optimizer", "nesterov", "--momentum", "0.8"]))
    assert nesterov == {"optimizer": "nesterov", "momentum": 0.8}  # momentum's own meaning, no warning
    assert capsys.readouterr().err.count("warning") == 1


@pytest.mark.parametrize("old", sorted(OLD_JSON_KEYS))
def test_an_old_json_key_still_comes_with_a_warning(old, capsys):
    new, use, _ = OLD_JSON_KEYS[old]
    assert old_json_keys({new: 0.25}) == {old: 0.75}
    assert capsys.readouterr().err == warning(f"the JSON key {old}", use)
    assert old_json_keys({"loss": 1.0}) == {}


@pytest.mark.parametrize("version", [1, 2])
def test_config_json_of_formats_1_and_2_migrates_the_renamed_settings(version):
    doc = json.loads((FORMAT1 / "lm" / "config.json").read_text())
    if version == 2:  # as the rnnkit of 2026-12-06 wrote it: the run's own settings, the old names
        doc = {**migrate(doc, lambda name: named(name).configs()), "format_version": 2}
        for old, new in RENAMED_SETTINGS.items():
            doc["train"][old] = doc["train"].pop(new)
        doc["train"].pop("alpha", None)
    doc["train"].update(optimizer="rmsprop", momentum=0.95, **{old: 7 for old in RENAMED_SETTINGS})
    migrated = migrate(doc, lambda name: named(name).configs())
    assert migrated["format_version"] == 3 and migrated["train"]["alpha"] == 0.95
    for old, new in RENAMED_SETTINGS.items():
        assert old not in migrated["train"] and migrated["train"][new] == 7
    train = named("lm").configs()[2](**migrated["train"])
    assert train.alpha == 0.95 and train.diagnostics_every == 7


def test_a_format_1_run_samples_with_the_old_flag(tmp_path, monkeypatch):
    shutil.copytree(FORMAT1, tmp_path / "format1")
    monkeypatch.chdir(tmp_path / "format1")
    new = run_main("sample", "lm", "--sample-length", 20, "--seed", 1, "--device", "cpu")
    old = run_main("sample", "lm", "--length", 20, "--seed", 1, "--device", "cpu")
    assert new.returncode == old.returncode == 0, old.stderr
    assert old.stdout == new.stdout and len(new.stdout) >= 20
    assert old.stderr == warning("--length", "--sample-length") and new.stderr == ""


def test_a_resumed_rmsprop_runs_momentum_is_its_alpha(tmp_path, make_text, tiny_lm_flags):
    (tmp_path / "text.txt").write_text(make_text(60))
    trained = run_main("train", tmp_path / "text.txt", "--out", tmp_path / "run", *tiny_lm_flags, "--optimizer",
                       "rmsprop", "--momentum", "0.95", "--max-steps", 2, "--sample-length", 0)
    assert trained.returncode == 0 and trained.stderr.count("warning") == 1, trained.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["alpha"] == 0.95
    resumed = run_main("train", "--resume", "--out", tmp_path / "run", "--momentum", "0.8", "--max-steps", 3)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("warning") == 1 and warning("--momentum with --optimizer rmsprop", "--alpha") \
        in resumed.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["alpha"] == 0.8


def test_sample_configs_old_keyword_acts_as_sample_length(capsys):
    assert SampleConfig(length=7).sample_length == 7
    assert capsys.readouterr().err == "warning: SampleConfig(length=...) is deprecated; use sample_length\n"
    with pytest.raises(ConfigError, match="length is the deprecated name of sample_length"):
        SampleConfig(length=7, sample_length=9)
