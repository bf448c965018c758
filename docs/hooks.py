"""MkDocs hooks: pages generated from the code at every build, so they cannot drift from it.

- ``cli.md``: every ``rnnkit`` command and its options, read from the parser the command line uses
  (``rnnkit.cli.parser.build_parser``), grouped as ``--help`` groups them.
- ``results.md`` and ``notebook.md``: ``benchmarks/RESULTS.md``, the tables of measured figures, and
  ``benchmarks/NOTEBOOK.md``, the dated experiments behind them, as they are in the repository.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def on_files(files, config):
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    for page in ("results", "notebook"):
        text = (ROOT / "benchmarks" / f"{page.upper()}.md").read_text(encoding="utf-8")
        text = text.replace("](NOTEBOOK.md)", "](notebook.md)").replace("](RESULTS.md)", "](results.md)")
        files.append(File.generated(config, f"{page}.md", content=text))
    for figure in sorted((ROOT / "benchmarks").glob("*.png")):  # the figures the two pages show
        files.append(File.generated(config, figure.name, content=figure.read_bytes()))
    return files


def cli_reference() -> str:
    from rnnkit.cli.parser import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in commands._choices_actions}
    lines = ["# Command line", "", "Generated from the parser `rnnkit` itself runs (`rnnkit COMMAND --help` prints "
             "the same). Every setting of `rnnkit train` is also a key of a `--config` JSON file and of a run "
             "folder's `config.json`.", ""]
    for name, sub in commands.choices.items():
        lines += [f"## rnnkit {name}", "", helps.get(name) or sub.description or "", "", "```",
                  sub.format_usage().removeprefix("usage: ").strip(), "```", ""]
        for group in sub._action_groups:
            rows = [a for a in group._group_actions if a.help != argparse.SUPPRESS and "-h" not in a.option_strings]
            if not rows:
                continue
            lines += [f"**{group.title}**", "", "| option | what it does |", "|---|---|"]
            for action in rows:
                flag = ", ".join(action.option_strings) or action.dest.upper()
                text = (action.help or "").replace("%%", "%").replace("|", "\\|").replace("\n", " ")  # as --help
                if action.choices and not isinstance(action, argparse._SubParsersAction):
                    text += f" (one of {', '.join(map(str, action.choices))})"
                lines.append(f"| `{flag}` | {text} |")
            lines.append("")
    return "\n".join(lines) + "\n"

