"""rnnkit installed as users install it: ``pip install .`` (a wheel, not the
editable checkout) into a fresh venv, then every command run from another
folder; the C kernels built on first use into the per-user cache, never into
site-packages; and, with ``CC`` pointing at nothing, everything still runs
on torch's ops after the one warning.

The venv reads torch and the other dependencies from this interpreter's
site-packages (a ``.pth`` line, so nothing is downloaded or copied), but not
this checkout: a path added by a ``.pth`` line has its own ``.pth`` files
(the editable install's finder) ignored, and the test checks that the
package imported is the installed copy."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the venv's bin folder, its site-packages) with rnnkit installed from a wheel of the checkout."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = tmp_path_factory.mktemp("source")  # a copy: setuptools builds in the source folder (build/)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                             "--no-index", "--target", site, source], capture_output=True, text=True, cwd=source,
                            env={**os.environ, "PIP_NO_INPUT": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    script = venv / "bin" / "rnnkit"  # --target installs no scripts: the entry point as pip would write it
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom rnnkit.cli.main import main\n"
                      f"sys.exit(main())\n")
    script.chmod(0o755)
    return venv / "bin", site


def run(bin_dir: Path, *args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([bin_dir / "rnnkit", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_an_installed_rnnkit_trains_samples_and_builds_its_kernels_in_the_users_cache(installed, tmp_path):
    bin_dir, site = installed
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    where = subprocess.run([bin_dir / "python", "-c", "import rnnkit; print(rnnkit.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(site), where  # the installed copy, not the checkout
    assert (site / "rnnkit" / "kernels" / "lstm.c").is_file()  # the kernels' sources ship with the package
    (tmp_path / "text.txt").write_text("the cat sat on the mat. " * 200)
    tiny = ["--hidden-size", 16, "--num-layers", 1, "--embedding-dim", 8, "--batch-size", 4, "--seq-len", 16,
            "--device", "cpu", "--sample-length", 0]
    trained = run(bin_dir, "train", "text.txt", "--out", "run", "--max-steps", 3, "--engine", "explicit", *tiny,
                  cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr
    assert list((tmp_path / "cache" / "rnnkit").glob("kernels-*.so"))  # built on first use, in the user's cache
    assert not list((site / "rnnkit").rglob("*.so"))  # none in the installed package
    sampled = run(bin_dir, "sample", "run", "--length", 20, cwd=tmp_path, env=env)
    assert sampled.returncode == 0 and len(sampled.stdout) >= 20, sampled.stderr
    for command in (["eval", "run"], ["report", "run", "--out", "report.html"]):
        result = run(bin_dir, *command, cwd=tmp_path, env=env)
        assert result.returncode == 0, (command, result.stderr)
    from rnnkit.version import __version__

    assert run(bin_dir, "--version", cwd=tmp_path, env=env).stdout.strip() == f"rnnkit {__version__}"


def test_without_a_c_compiler_an_installed_rnnkit_runs_on_torch_ops_after_one_warning(installed, tmp_path):
    bin_dir, _ = installed
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "CC": str(tmp_path / "no-such-cc"),
           "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    (tmp_path / "text.txt").write_text("the cat sat on the mat. " * 200)
    result = run(bin_dir, "train", "text.txt", "--out", "run", "--max-steps", 3, "--engine", "explicit",
                 "--hidden-size", 16, "--num-layers", 1, "--batch-size", 4, "--seq-len", 16, "--device", "cpu",
                 "--sample-length", 0, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "native cell kernels unavailable" in line]
    assert len(warnings) == 1, result.stderr
    assert not (tmp_path / "cache" / "rnnkit").exists() or not list((tmp_path / "cache" / "rnnkit").glob("*.so"))
