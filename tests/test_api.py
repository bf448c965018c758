"""The Python guide's examples run as written (on a small corpus, fewer steps), and every documented
``rnnkit train`` command passes the option rules."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PYTHON_GUIDE = ROOT / "docs" / "guide" / "python.md"


def test_the_python_guides_language_model_runs(corpus, tmp_path, capsys, monkeypatch):
    block = re.search(r"## A character language model\n\n```python\n(.*?)```", PYTHON_GUIDE.read_text(),
                      re.S).group(1)
    code = (block.replace('"input.txt"', repr(str(corpus)))
                 .replace("max_steps=500", "max_steps=20, device='cpu'")
                 .replace("hidden_size=512", "hidden_size=32")
                 .replace("seq_len=128, batch_size=64", "seq_len=32, batch_size=8")
                 .replace("ROMEO:", "3: the"))  # a prime made of characters the small corpus has
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(PYTHON_GUIDE), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "\n3: the" in printed and "'bpc'" in printed
    assert namespace["config"].model.hidden_size == 32
    assert (tmp_path / "runs" / "shakespeare" / "model.safetensors").exists()


def test_the_python_guides_classifier_lines_run(tmp_path, capsys, monkeypatch):
    block = re.search(r"A classifier is the same few lines.*?```python\n(.*?)```", PYTHON_GUIDE.read_text(),
                      re.S).group(1)
    rows = ["text,label"] + [f"check my channel {i},spam" if i % 2 else f"nice song {i},ham" for i in range(40)]
    (tmp_path / "comments.csv").write_text("\n".join(rows) + "\n")
    code = "import rnnkit\n" + block.replace("max_epochs=10", "max_epochs=1, device='cpu'")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(PYTHON_GUIDE), "exec"), {})
    assert "val_accuracy" in capsys.readouterr().out
    assert (tmp_path / "runs" / "spam" / "model.safetensors").exists()


def documented_train_commands() -> list[str]:
    """Every ``rnnkit train ...`` command line in the README, the results page and the shell blocks of
    the site's home, guides and coming-from pages (continuation lines joined, comments dropped). The
    tutorials are not read here: tests/test_tutorials.py runs them, on data a static check cannot see."""
    commands = []
    pages = [ROOT / "docs" / "index.md", *sorted((ROOT / "docs").glob("guide/*.md")),
             *sorted((ROOT / "docs").glob("coming-from/*.md"))]
    for path in (README, ROOT / "benchmarks" / "RESULTS.md", *pages):
        text = path.read_text()
        if path.is_relative_to(ROOT / "docs"):  # a page's shell blocks: its ```text blocks hold printouts
            text = "\n".join(re.findall(r"^```(?:bash|sh|shell|console)\n(.*?)^```", text, re.S | re.M))
        text = text.replace("\\\n", " ")
        for line in text.splitlines():
            command = line.strip().strip("`").split("  #")[0].split("`")[0]
            if command.startswith("rnnkit train ") and "..." not in command:
                commands.append(command)
            elif not line.lstrip().startswith("rnnkit"):  # a command in the text or a table: `rnnkit train ...`
                commands += [c for c in re.findall(r"`(rnnkit train [^`]*)`", line)
                             if "..." not in c and "--help" not in c]
    return commands


def test_every_documented_train_command_passes_the_option_rules():
    """The commands the documentation gives are the ones that work: none of
    their settings is refused as doing nothing for what they choose."""
    from rnnkit.cli.main import build_parser
    from rnnkit.cli.options import Choice, refuse_unused, split_settings, train_settings
    from rnnkit.tasks import named

    commands = documented_train_commands()
    assert len(commands) >= 10, commands
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        given = train_settings(args)
        task = named(given.get("task", "lm"))
        model, data, train = split_settings(given, task)
        choice = Choice(task.model_config(**model), task.data_config(**data, path=args.path),
                        task.train_config(**train))
        refuse_unused(given, choice)  # raises ConfigError naming the flag
