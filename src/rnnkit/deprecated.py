"""Old names of flags and settings, kept working for this version: one table
and the one mechanism that reads it.

An old name behaves as its new name after one line on stderr,
``warning: --length is deprecated; use --sample-length``. Giving both the
old and the new name is an error (:class:`rnnkit.errors.ConfigError`: one
line, exit code 2). A run folder's config.json with old keys is migrated
silently (:func:`rnnkit.training.run_config.migrate`): it is no one's typing.

- :data:`RENAMED_SETTINGS`: config fields, so ``train``'s and ``lr-find``'s
  flags (``--kebab-case``), ``--config`` keys and config.json keys.
- :data:`RENAMED_FLAGS`: flags of other commands, by command.
- ``--momentum`` with ``--optimizer rmsprop`` meant RMSprop's smoothing
  constant, now ``--alpha`` (:func:`rmsprop_momentum`).
- :data:`OLD_JSON_KEYS`: keys of ``rnnkit eval --json`` that still come,
  beside their new ones, with a warning (:func:`old_json_keys`).
"""

from __future__ import annotations

import sys

from rnnkit.errors import ConfigError

# a config field's old name -> its new name (train settings: TrainConfig and the tasks' training configs)
RENAMED_SETTINGS = {"diagnostics": "diagnostics_every"}

# a command -> its flags' old names -> new names
RENAMED_FLAGS: dict[str, dict[str, str]] = {
    "sample": {"--length": "--sample-length"},
    "bench": {"--generate-chars": "--sample-length", "--json": "--out"},
    "predict": {"--output": "--out"},
    "report": {"--chars": "--text-length"},
}
for _command in ("train", "lr-find", "tune"):  # the commands that take train's flags
    RENAMED_FLAGS[_command] = {"--" + old.replace("_", "-"): "--" + new.replace("_", "-")
                               for old, new in RENAMED_SETTINGS.items()}


# eval --json: an old key -> (its new key, what to use, the old value from the new one)
OLD_JSON_KEYS = {"string_accuracy": ("sequence_error_rate", "1 - sequence_error_rate", lambda new: 1 - new)}


def warn(old: str, new: str) -> None:
    """The one line an old name prints."""
    print(f"warning: {old} is deprecated; use {new}", file=sys.stderr)


def both(old: str, new: str, where: str = "") -> ConfigError:
    """The ConfigError for a setting given under both its deprecated ``old`` name and its ``new`` one."""
    return ConfigError(f"{where}{old} is the deprecated name of {new}; give only {new}")


def _names(token: str) -> str:
    return token.split("=", 1)[0]


def rewrite_argv(argv: list[str]) -> list[str]:
    """``argv`` (the command first) with its command's old flag names replaced by the new ones,
    each with its warning; both names of one flag are an error. Tokens after ``--`` are values."""
    if not argv or argv[0] not in RENAMED_FLAGS:
        return list(argv)
    renamed = RENAMED_FLAGS[argv[0]]
    end = argv.index("--") if "--" in argv else len(argv)
    typed = {_names(t) for t in argv[1:end] if t.startswith("--")}
    out = list(argv)
    for i in range(1, end):
        old = _names(argv[i])
        if old in renamed:
            new = renamed[old]
            if new in typed:
                raise both(old, new)
            warn(old, new)
            out[i] = new + argv[i][len(old):]
    return out


def old_json_keys(result: dict) -> dict:
    """The old keys of the JSON object ``result`` (by :data:`OLD_JSON_KEYS`), each with its warning."""
    old = {}
    for key, (new, use, value) in OLD_JSON_KEYS.items():
        if new in result:
            warn(f"the JSON key {key}", use)
            old[key] = value(result[new])
    return old


def rename_settings(values: dict, where: str) -> dict:
    """``values`` (settings by name, from ``where``: a --config file) with old names replaced,
    each with its warning; both names of one setting are an error."""
    out = dict(values)
    for old, new in RENAMED_SETTINGS.items():
        if old in out:
            if new in out:
                raise both(old, new, f"{where}: ")
            warn(f"{where}: {old}", new)
            out[new] = out.pop(old)
    return out


def rmsprop_momentum(given: dict, optimizer: str | None = None) -> dict:
    """``given`` settings with ``momentum`` under ``optimizer rmsprop`` (which set RMSprop's
    smoothing constant) moved to ``alpha``, with the warning; with ``alpha`` too, an error.
    ``optimizer``: the optimizer when ``given`` names none (a resumed run's)."""
    if given.get("optimizer", optimizer) != "rmsprop" or "momentum" not in given:
        return given
    if "alpha" in given:
        raise ConfigError("--momentum with --optimizer rmsprop is the deprecated name of --alpha; give only --alpha")
    warn("--momentum with --optimizer rmsprop", "--alpha")
    out = {k: v for k, v in given.items() if k != "momentum"}
    out["alpha"] = rmsprop_alpha(given["momentum"])
    return out


def rmsprop_alpha(momentum):
    """RMSprop's smoothing constant as the optimizer read an old ``momentum``: itself below 1, else 0.99
    (a value that is no number is left for the setting's own check to refuse)."""
    return 0.99 if isinstance(momentum, (int, float)) and momentum >= 1 else momentum
