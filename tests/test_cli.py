"""The command line end to end, and every bad input's error. Most commands run in this
process (``cli_here``); the real entry point runs in a subprocess where the process
is the point: Ctrl-C, ``python -m rnnkit``, the console script and its exit codes."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from rnnkit.training.device import bf16_supported


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli_here, make_text, tiny_lm_flags):
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus.txt"
    corpus.write_text(make_text())
    run = root / "run"
    result = cli_here("train", corpus, "--out", run, "--max-steps", 60, "--eval-every", 30, *tiny_lm_flags)
    assert result.returncode == 0, result.stderr
    return corpus, run, result


def test_train_prints_samples_and_writes_the_run_folder(trained):
    corpus, run, result = trained
    assert "val" in result.stdout and "sample with: rnnkit sample" in result.stdout
    assert "in fp32, fused engine;" in result.stdout or "in bf16, fused engine;" in result.stdout  # the LSTM's
    for name in ("config.json", "model.safetensors", "last.safetensors", "metrics.jsonl", "loss.png"):
        assert (run / name).exists(), name
    doc = json.loads((run / "config.json").read_text())
    assert doc["format_version"] == 3 and doc["tokenizer"]["kind"] == "char"
    assert doc["model"]["hidden_size"] == 32 and doc["data"]["path"] == str(corpus)


@pytest.mark.slow
def test_sample_streams_text_from_the_prime_and_is_seeded(trained, cli_here):
    _, run, _ = trained
    a = cli_here("sample", run, "--prime", "3: the", "--sample-length", 50, "--seed", 7)
    b = cli_here("sample", run, "--prime", "3: the", "--sample-length", 50, "--seed", 7)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.startswith("3: the") and len(a.stdout) == len("3: the") + 51
    greedy = cli_here("sample", run, "--prime", "3: the", "--sample-length", 30, "--temperature", 0, "--num-samples", 2)
    _, first, second = re.split(r"-+ sample \d -+\n", greedy.stdout)
    assert first == second  # greedy is deterministic
    topk1 = cli_here("sample", run, "--prime", "3: the", "--sample-length", 30, "--top-k", 1, "--seed", 3)
    assert topk1.stdout == first
    # the default (auto) is bf16 weights where the hardware has bf16 units: the fp32 greedy text, within rounding
    fp32 = cli_here("sample", run, "--prime", "3: the", "--sample-length", 30, "--temperature", 0,
                    "--precision", "fp32")
    assert fp32.returncode == 0, fp32.stderr
    if bf16_supported(torch.device("cpu")):
        assert sum(a == b for a, b in zip(fp32.stdout.rstrip("\n"), first.rstrip("\n"))) >= 30
    else:
        assert fp32.stdout == first


@pytest.mark.slow
def test_eval_reports_loss_bpc_perplexity_as_json(trained, tmp_path, cli, cli_here):
    corpus, run, _ = trained
    result = cli("eval", run, "--json")  # the real entry point's eval; the others in this process
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["bpc"] == pytest.approx(stats["loss"] / 0.6931471805599453)
    assert stats["perplexity"] == pytest.approx(2.718281828459045 ** stats["loss"])
    n = len(corpus.read_text())
    assert stats["tokens"] == n - int(n * 0.9) - 1
    other = tmp_path / "other.txt"
    other.write_text(corpus.read_text()[:3000])
    windows = json.loads(cli_here("eval", run, other, "--json", "--window", 64).stdout)
    assert windows["tokens"] == 2999 and windows["protocol"] == "windows of 64"
    stream = json.loads(cli_here("eval", run, other, "--json").stdout)
    dynamic = json.loads(cli_here("eval", run, other, "--json", "--dynamic", 0.3, "--segment", 40).stdout)
    assert dynamic["tokens"] == 2999 and dynamic["protocol"].startswith("one stream, dynamic")
    assert dynamic["loss"] < stream["loss"]  # a model of 60 steps goes on learning the words
    text = cli_here("eval", run)
    assert "bits/token" in text.stdout and "perplexity" in text.stdout


def test_resume_continues_and_python_dash_m_equals_the_script(trained, tmp_path, cli):
    corpus, run, _ = trained
    result = cli("train", "--resume", "--out", run, "--max-steps", 70, "--eval-every", 1000)
    assert result.returncode == 0, result.stderr
    assert "after 70 steps" in result.stdout
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 70


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, cli_here, make_text, tiny_lm_flags):
    corpus = tmp_path / "c.txt"
    corpus.write_text(make_text())
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "train", str(corpus), "--out", str(run),
                             "--max-steps", "100000", *tiny_lm_flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rnnkit train --resume --out" in err
    assert (run / "last.safetensors").exists()
    result = cli_here("train", "--resume", "--out", run, "--max-steps", 10**5, "--time-limit", 1,
                      "--eval-every", 10**6)
    assert result.returncode == 0, result.stderr


def write(name, content):
    def make(d):
        (d / name).write_bytes(content)
        return d / name
    return make


@pytest.mark.parametrize("make_input,args,message", [
    (lambda d: d / "missing.txt", [], "no such file"),
    (write("empty.txt", b""), [], "is empty"),
    (lambda d: d, [], "is a directory"),
    (write("s.txt", b"short text\n" * 10), [], "lower --batch-size or --seq-len"),
    (write("l.txt", b"caf\xe9 " * 5000), [], "use --tokenizer byte"),
    (lambda d: d / "missing.txt", ["--cell", "transformer"], "cell must be one of"),
    (lambda d: d / "missing.txt", ["--lr", "fast"], "argument --lr: expected float, got 'fast'"),
    (lambda d: d / "missing.txt", ["--dropout", "1.5"], "dropout must be in [0, 1); got 1.5"),
    (lambda d: d / "missing.txt", ["--optimizer", "lion"], "optimizer must be one of"),
])
def test_train_bad_input_gets_one_line_and_leaves_no_run_folder(tmp_path, make_input, args, message, cli_here,
                                                                 user_error):
    path = make_input(tmp_path)
    result = cli_here("train", path, "--out", tmp_path / "run", *args)
    user_error(result, message)
    assert not (tmp_path / "run").exists(), "a failed start must not create the run folder"


@pytest.mark.slow
def test_byte_tokenizer_trains_on_undecodable_bytes(tmp_path, cli_here, tiny_lm_flags):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("caf\xe9 au lait, s'il vous pla\xeet. " * 300).encode("latin-1"))
    result = cli_here("train", path, "--out", tmp_path / "run", "--tokenizer", "byte", "--max-steps", 3,
                      *tiny_lm_flags)
    assert result.returncode == 0, result.stderr
    assert cli_here("sample", tmp_path / "run", "--sample-length", 20, "--prime", "caf").returncode == 0


def test_sample_and_eval_bad_inputs_get_one_line(trained, tmp_path, cli_here, user_error, tiny_lm_flags):
    corpus, run, _ = trained
    user_error(cli_here("sample", run, "--prime", "€uro"), "never saw in training: '€'")
    user_error(cli_here("sample", run, "--temperature", "-1"), "temperature must be >= 0")
    user_error(cli_here("sample", run, "--top-p", "0"), "top_p must be in (0, 1]")
    user_error(cli_here("sample", run, "--top-p", "1.5"), "top_p must be in (0, 1]")
    user_error(cli_here("sample", run, "--precision", "fp16"), "precision must be one of auto, fp32, bf16")
    user_error(cli_here("sample", tmp_path / "nope"), "no such run folder")
    user_error(cli_here("sample", tmp_path), "is not a run folder")
    user_error(cli_here("eval", run, tmp_path / "nope.txt"), "no such file")
    user_error(cli_here("eval", run, "--dynamic", 0.3, "--window", 64), "drop --window or --dynamic")
    user_error(cli_here("eval", run, "--dynamic", -1), "--dynamic needs a step size >= 0")
    user_error(cli_here("eval", run, "--segment", 20), "add --dynamic LR or drop it")
    user_error(cli_here("train", corpus, "--out", run, *tiny_lm_flags), "already holds a run")


def test_damaged_or_newer_run_folders_are_refused_and_left_untouched(trained, tmp_path, cli_here, user_error):
    import shutil

    _, run, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    user_error(cli_here("sample", broken), "is corrupt (truncated or altered)")
    tampered = tmp_path / "tampered"
    shutil.copytree(run, tampered)
    raw = bytearray((tampered / "model.safetensors").read_bytes())
    raw[len(raw) // 2] ^= 0x55
    (tampered / "model.safetensors").write_bytes(bytes(raw))
    user_error(cli_here("eval", tampered), "is corrupt")
    future = tmp_path / "future"
    shutil.copytree(run, future)
    doc = json.loads((future / "config.json").read_text())
    doc["format_version"] = 7
    (future / "config.json").write_text(json.dumps(doc))
    before = {p.name: p.read_bytes() for p in future.iterdir()}
    user_error(cli_here("sample", future), "format version 7")
    user_error(cli_here("train", "--resume", "--out", future), "format version 7")
    assert before == {p.name: p.read_bytes() for p in future.iterdir()}, "nothing may be overwritten"


@pytest.mark.slow
def test_demo_trains_on_the_standard_library_and_prints_samples(tmp_path, cli_here, monkeypatch):
    from rnnkit.cli import demo

    # 1.1 MB instead of 3: the run ends by validating a tenth of the corpus with the 2 x 512 LSTM, which is most
    # of the test's time; the corpus is still the standard library's and more than 1 MB
    monkeypatch.setattr(demo, "DEMO_CORPUS_BYTES", 1_100_000)
    result = cli_here("demo", "--time-limit", 2, "--out", tmp_path / "demo")
    assert result.returncode == 0, result.stderr
    corpus = (tmp_path / "demo" / "corpus.txt").read_text()
    assert len(corpus) > 1_000_000 and "def " in corpus and "import " in corpus
    assert "validation loss" in result.stdout and (tmp_path / "demo" / "model.safetensors").exists()


@pytest.mark.slow
def test_config_file_then_flags_take_precedence(tmp_path, cli_here, user_error, make_text):
    corpus = tmp_path / "c.txt"
    corpus.write_text(make_text())
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"hidden_size": 24, "cell": "gru", "max_steps": 2, "num_layers": 1,
                   "embedding_dim": 8, "batch_size": 8, "seq_len": 16}))
    result = cli_here("train", corpus, "--config", settings, "--cell", "rnn", "--out", tmp_path / "run",
                      "--sample-length", 0)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (doc["model"]["hidden_size"], doc["model"]["cell"], doc["train"]["max_steps"]) == (24, "rnn", 2)
    settings.write_text(json.dumps({"hidden_sise": 24}))
    user_error(cli_here("train", corpus, "--config", settings), "unknown setting(s) hidden_sise")


def test_console_script_prime_file_and_missing_cuda(trained, tmp_path, cli, user_error, tiny_lm_flags):
    import torch

    corpus, run, _ = trained
    script = os.path.join(os.path.dirname(sys.executable), "rnnkit")
    assert subprocess.run([script, "--help"], capture_output=True).returncode == 0
    prime = tmp_path / "prime.txt"
    prime.write_text("5: a small")
    result = cli("sample", run, "--prime-file", prime, "--sample-length", 10, "--seed", 1)
    assert result.returncode == 0 and result.stdout.startswith("5: a small"), result.stderr
    if not torch.cuda.is_available():
        user_error(cli("train", corpus, "--out", tmp_path / "gpu", "--device", "cuda", *tiny_lm_flags[:-2]),
                   "no CUDA device is available here")
