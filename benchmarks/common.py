"""What the benchmark scripts share: where the data lies, running rnnkit and
other commands in fresh processes, reading a run's metrics, timing
contestants in turns, and markdown tables.

The scripts run as ``python benchmarks/NAME.py``; Python puts the script's
folder first on ``sys.path``, so ``import common`` finds this file from any
working directory.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

# ../shared/data beside the repository (each folder there has a SOURCES.md)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TINYSHAKESPEARE = DATA / "tinyshakespeare" / "input.txt"


# -- commands -------------------------------------------------------------------

def print_command() -> None:
    """The command line that ran this script, as RESULTS.md quotes it."""
    print("$ python " + shlex.join(sys.argv), flush=True)


def run(cmd: Sequence[str], env: dict[str, str] | None = None, capture: bool = True) -> str:
    """Runs ``cmd`` with ``env`` added to this process's environment; its stdout
    where ``capture``, else its output goes to the terminal. A command that fails
    ends the script with its exit code and what it wrote on stderr."""
    done = subprocess.run(list(cmd), env={**os.environ, **(env or {})}, capture_output=capture, text=True)
    if done.returncode != 0:
        sys.exit(f"{Path(sys.argv[0]).stem}: `{shlex.join(cmd)}` failed with exit code {done.returncode}"
                 + (f":\n{done.stderr}" if capture else ""))
    return done.stdout if capture else ""


def rnnkit(*args: str, capture: bool = True) -> str:
    """Runs ``rnnkit ARGS`` in a fresh process of this interpreter, after printing the command; its stdout."""
    print("$ rnnkit " + shlex.join(args), flush=True)
    return run([sys.executable, "-m", "rnnkit", *args], capture=capture)


def torchrun(script: str, *args: str) -> None:
    """Runs ``script ARGS`` as two processes under torchrun on this machine, one thread each."""
    run([str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node=2", script, *args],
        env={"OMP_NUM_THREADS": "1"})


def metrics(run_folder: Path) -> list[dict]:
    """The rows of a run folder's metrics.jsonl, in order."""
    return [json.loads(line) for line in (Path(run_folder) / "metrics.jsonl").read_text().splitlines()]


# -- timing ---------------------------------------------------------------------

def rate(work: Callable, items: list, units: Callable, seconds: float) -> float:
    """Units a second of ``work`` over ``items`` in turn for about ``seconds`` (at least one call),
    after one warm-up call; ``units(item)`` counts an item's units (tokens, frames, sentences)."""
    work(items[0])
    done, n, start = 0, 0, time.perf_counter()
    while True:
        work(items[n % len(items)])
        done, n = done + units(items[n % len(items)]), n + 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def in_turns(contestants: dict, rounds: int, seconds: float) -> dict[str, list[float]]:
    """Each contestant's rate in each of ``rounds`` rounds, in which they take turns, so that load from
    other processes falls on all of them alike; ``contestants``: name -> (work, items, units) of ``rate``."""
    rates = {name: [] for name in contestants}
    for _ in range(rounds):
        for name, (work, items, units) in contestants.items():
            rates[name].append(rate(work, items, units, seconds))
    return rates


# -- tables ---------------------------------------------------------------------

def markdown_row(cells: Iterable) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def markdown_table(columns: Sequence[str], rows: Iterable[Iterable]) -> str:
    """A markdown table of cells already formatted (or printed as ``str`` gives them)."""
    return "\n".join([markdown_row(columns), "|" + "---|" * len(columns), *map(markdown_row, rows)])
