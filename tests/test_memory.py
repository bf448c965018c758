"""The Trainer's allocator setting: freed activations stay mapped for reuse."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not os.path.exists("/proc/self/status"),
                                reason="glibc's mallopt and /proc are Linux-only")

# allocates and frees a 64 MiB tensor, then prints whether the setting is on
# and how much of those 64 MiB the process still holds (VmRSS)
PROBE = """
import re, sys, torch
from rnnkit.kernels.memory import keep_freed_memory
rss = lambda: int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
on = keep_freed_memory() if sys.argv[1] == "keep" else False
before = rss()
x = torch.ones(16 * 2**20)  # 64 MiB, written so that every page is mapped
del x
print(on, round(rss() - before))
"""


def probe(mode: str, **env) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    on, kept = out.stdout.split()
    return on, int(kept)


def test_freed_memory_is_kept_only_when_asked():
    on, kept = probe("keep")
    assert on == "True" and kept >= 60  # the 64 MiB stay mapped for the next allocation
    on, kept = probe("default")
    assert on == "False" and kept <= 16  # glibc unmaps them (a few MiB of other allocations remain)
    assert probe("keep", RNNKIT_KEEP_FREED_MEMORY="0")[0] == "False"


def test_a_nonsense_setting_is_refused_in_one_line(corpus, tmp_path, cli, user_error, tiny_lm_flags):
    out = cli("train", corpus, "--out", tmp_path / "run", "--max-steps", 1, *tiny_lm_flags,
              env={**os.environ, "RNNKIT_KEEP_FREED_MEMORY": "yes"})
    user_error(out, "RNNKIT_KEEP_FREED_MEMORY must be 0 or 1, got 'yes'")


def test_the_trainer_keeps_freed_memory(corpus, tmp_path):
    code = ("import sys, rnnkit; from rnnkit.kernels import memory; "
            "data = rnnkit.TextData.from_file(sys.argv[1], rnnkit.DataConfig(seq_len=16, batch_size=4)); "
            "rnnkit.Trainer(rnnkit.LanguageModel(data.vocab_size, hidden_size=8, num_layers=1), data, "
            "rnnkit.TrainConfig(max_steps=1), out=sys.argv[2], quiet=True); print(memory._applied)")
    out = subprocess.run([sys.executable, "-c", code, str(corpus), str(tmp_path / "run")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
