"""`rnnkit export`: each task's graphs run in onnxruntime and give rnnkit's outputs to 1e-5 on padded
batches; the language model's step generates, greedily, rnnkit's own tokens; seq2seq's encoder and
decoder step decode as rnnkit's greedy search does; bad inputs are one line, exit 2, nothing written."""

import builtins
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnnkit.models import CTCRecognizer, LanguageModel, Seq2Seq, SequenceClassifier, SequenceTagger
from rnnkit.models.seq2seq import greedy
from rnnkit.tasks import load_run, named
from rnnkit.training import export

ort = pytest.importorskip("onnxruntime")

SIZES = dict(hidden_size=16, num_layers=2, embedding_dim=8)
RUN = SimpleNamespace(labels=["O", "B", "I"], tokenizer=SimpleNamespace(), task="test")


def exported(task: str, model, tmp_path, run=RUN):
    """{graph name: an onnxruntime session} of ``model`` exported as ``task`` does, and the folder."""
    model.eval()
    export.on_torch_ops(model, "run")
    graphs, files = named(task).export_graphs(model, run)
    out = export.write_export(graphs, tmp_path / "export", "run", {"task": task}, files)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return {g.name: ort.InferenceSession(str(out / f"{g.name}.onnx"), options) for g in graphs}, out


def padded(batch_lengths, vocab: int, seed: int = 0):
    """ids (B, T) of these lengths, padded with random ids (which must count for nothing), and lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(batch_lengths)
    return torch.randint(0, vocab, (len(lengths), int(lengths.max())), generator=g), lengths


def assert_close(got: np.ndarray, want: torch.Tensor) -> None:
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_classifier_gives_rnnkits_scores_on_a_padded_batch(tmp_path, cell):
    torch.manual_seed(0)
    model = SequenceClassifier(40, 3, cell=cell, pooling="attention", **SIZES)
    sessions, out = exported("classify", model, tmp_path)
    x, lengths = padded([11, 3, 7, 1, 11], 40)
    (scores,) = sessions["classifier"].run(None, {"ids": x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        assert_close(scores, model(x, lengths)[0])
        alone = torch.cat([model(x[b:b + 1, :n], lengths[b:b + 1])[0] for b, n in enumerate(lengths.tolist())])
    assert_close(scores, alone)  # padding counts for nothing
    doc = json.loads((out / "export.json").read_text())
    assert doc["graphs"]["classifier"]["inputs"][0] == {"name": "ids", "dtype": "int64", "shape": ["B", "T"],
                                                         "doc": doc["graphs"]["classifier"]["inputs"][0]["doc"]}
    assert doc["graphs"]["classifier"]["outputs"][0]["shape"] == ["B", 3]


def test_the_tagger_gives_rnnkits_emissions_and_its_crf_decodes_as_rnnkits(tmp_path):
    torch.manual_seed(1)
    model = SequenceTagger(40, 3, cell="lstm", crf=True, **SIZES)
    sessions, out = exported("tag", model, tmp_path)
    x, lengths = padded([9, 4, 6], 40, seed=1)
    (emissions,) = sessions["tagger"].run(None, {"ids": x.numpy(), "lengths": lengths.numpy()})
    mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    with torch.no_grad():
        assert_close(emissions[mask.numpy()], model(x, lengths)[0][mask])
        want = model.predict(x, lengths)
    crf = json.loads((out / "crf.json").read_text())
    assert crf["labels"] == RUN.labels
    for b, n in enumerate(lengths.tolist()):  # Viterbi as crf.json describes it, in NumPy
        A, E = np.array(crf["transitions"]), emissions[b, :n]
        delta, back = np.array(crf["start"]) + E[0], []
        for t in range(1, n):
            scores = delta[:, None] + A
            back.append(scores.argmax(0))
            delta = scores.max(0) + E[t]
        path = [int((delta + np.array(crf["end"])).argmax())]
        for pointers in reversed(back):
            path.append(int(pointers[path[-1]]))
        assert path[::-1] == want[b, :n].tolist()


def test_the_ctc_encoder_gives_rnnkits_log_probabilities(tmp_path):
    torch.manual_seed(2)
    model = CTCRecognizer(13, 6, cell="gru", hidden_size=16, num_layers=2)
    sessions, _ = exported("ctc", model, tmp_path)
    lengths = torch.tensor([20, 5, 13])
    x = torch.randn(3, 20, 13, generator=torch.Generator().manual_seed(3))
    (log_probs,) = sessions["ctc"].run(None, {"features": x.numpy(), "lengths": lengths.numpy()})
    mask = (torch.arange(20)[None, :] < lengths[:, None]).numpy()
    with torch.no_grad():
        assert_close(log_probs[mask], model(x, lengths)[0][torch.from_numpy(mask)])


def test_twenty_steps_of_the_exported_step_generate_rnnkits_greedy_text(tmp_path):
    torch.manual_seed(3)
    model = LanguageModel(30, cell="lstm", **SIZES)
    sessions, _ = exported("lm", model, tmp_path)
    step = sessions["step"]
    primes = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])  # (B, T): read in one call
    h = c = np.zeros((2, 2, 16), dtype=np.float32)
    logits, h, c = step.run(None, {"ids": primes.numpy(), "state_h": h, "state_c": c})
    with torch.no_grad():
        assert_close(logits, model(primes)[0].logits)
    tokens = []
    for _ in range(20):
        token = logits[:, -1].argmax(-1)[:, None]  # (B, 1)
        tokens.append(token[:, 0])
        logits, h, c = step.run(None, {"ids": token, "state_h": h, "state_c": c})
    want = torch.stack(list(model.generate(primes, 20, temperature=0)), dim=1)  # (B, 20)
    assert np.array_equal(np.stack(tokens, axis=1), want.numpy())


@pytest.mark.parametrize("attention,cell,sequence_end,recurrence", [
    ("additive", "lstm", "eos", "hidden"), ("none", "gru", "stop", "hidden"), ("general", "rnn", "stop", "hidden"),
    ("dot", "lstm", "eos", "output")])
def test_the_seq2seq_encoder_and_decoder_step_decode_as_rnnkits_greedy_search(tmp_path, attention, cell,
                                                                              sequence_end, recurrence):
    torch.manual_seed(4)
    model = Seq2Seq(20, 12, cell=cell, attention=attention, sequence_end=sequence_end,
                    decoder_recurrence=recurrence, **SIZES)
    sessions, _ = exported("seq2seq", model, tmp_path)
    x, lengths = padded([7, 3, 5], 20, seed=4)
    start = sessions["encoder"].run(None, {"ids": x.numpy(), "lengths": lengths.numpy()})
    names = [i.name for i in sessions["decoder_step"].get_inputs()]
    state = dict(zip(names[1:], start))
    tokens, done, outputs = np.full(3, model.end), np.zeros(3, bool), [[], [], []]
    for _ in range(12):
        log_probs, *nexts = sessions["decoder_step"].run(None, {"tokens": tokens, **state})
        tokens = log_probs.argmax(-1)
        for b in np.flatnonzero(~done):
            done[b] = tokens[b] == model.end
            if not done[b]:
                outputs[b].append(int(tokens[b]))
        state.update(zip([n for n in names[1:] if n not in ("keys", "values", "mask")], nexts))
        if done.all():
            break
    want, _ = greedy(model.eval(), x, lengths, 12)
    assert outputs == want


def test_a_conditioned_language_model_takes_its_label_as_an_input(tmp_path):
    torch.manual_seed(5)
    model = LanguageModel(30, num_conditions=3, cell="gru", **SIZES)
    sessions, _ = exported("lm", model, tmp_path)
    ids, condition, h = torch.randint(0, 30, (3, 6)), torch.tensor([2, 0, 1]), np.zeros((2, 3, 16), np.float32)
    logits, _ = sessions["step"].run(None, {"ids": ids.numpy(), "state_h": h, "condition": condition.numpy()})
    with torch.no_grad():
        assert_close(logits, model(ids, condition=condition)[0].logits)


@pytest.mark.parametrize("settings", [dict(encoder="tdnn", embedding_dim=8), dict(pooling="last", batchnorm=True)])
def test_tdnn_encoders_and_last_state_pooling_export_too(tmp_path, settings):
    torch.manual_seed(6)
    model = SequenceClassifier(40, 3, **{**SIZES, "cell": "lstm", **settings})
    sessions, _ = exported("classify", model, tmp_path)
    x, lengths = padded([8, 2, 5], 40, seed=6)
    (scores,) = sessions["classifier"].run(None, {"ids": x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        assert_close(scores, model(x, lengths)[0])


def test_a_classifier_of_vectors_reads_features(tmp_path):
    torch.manual_seed(7)
    model = SequenceClassifier(0, 2, input_size=5, cell="gru", hidden_size=16, num_layers=1)
    run = SimpleNamespace(labels=["a", "b"], tokenizer=SimpleNamespace(num_features=5))  # a recording's scaler
    sessions, _ = exported("classify", model, tmp_path, run)
    x, lengths = torch.randn(3, 10, 5), torch.tensor([10, 4, 7])
    (scores,) = sessions["classifier"].run(None, {"features": x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        assert_close(scores, model(x, lengths)[0])


@pytest.mark.parametrize("task,model,message", [
    ("classify", lambda: SequenceClassifier(40, 3, encoder="esn", hidden_size=16, embedding_dim=8),
     "its echo state reservoir runs with rnnkit's own loop"),
    ("lm", lambda: LanguageModel(30, cell="minlstm", **SIZES), "its minlstm cell has no ONNX node"),
    ("lm", lambda: LanguageModel(30, cell="lstm", skip_steps=2, **SIZES), "lstm cell with skip connections"),
])
def test_what_cannot_be_exported_is_refused_before_anything_is_written(tmp_path, task, model, message):
    from rnnkit.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("-", "\\-")):
        exported(task, model(), tmp_path)
    assert not (tmp_path / "export").exists()


def test_a_task_without_graphs_says_which_tasks_export():
    from rnnkit.errors import ConfigError

    with pytest.raises(ConfigError, match="a forecast run cannot be exported yet; export takes lm, classify"):
        named("forecast").export_graphs(None, None)


# -- the command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    from conftest import TINY_LM_FLAGS, _make_text, run_main

    folder = tmp_path_factory.mktemp("lm")
    (folder / "corpus.txt").write_text(_make_text(100))
    trained = run_main("train", folder / "corpus.txt", *TINY_LM_FLAGS, "--max-steps", 3, "--out", folder / "run")
    assert trained.returncode == 0, trained.stderr
    return folder / "run"


def test_export_writes_the_step_and_a_sidecar_that_encodes_text(lm_run, cli_here):
    result = cli_here("export", lm_run)
    assert result.returncode == 0, result.stderr
    folder = lm_run / "export"
    doc = json.loads((folder / "export.json").read_text())
    assert doc["task"] == "lm" and doc["graphs"]["step"]["file"] == "step.onnx"
    model, tokenizer, _ = load_run(lm_run)
    assert doc["tokenizer"] == tokenizer.to_dict()  # the vocabulary, to encode a prime outside Python
    step = ort.InferenceSession(str(folder / "step.onnx"))
    ids = torch.as_tensor(tokenizer.encode("the cat"))[None]  # (1, T)
    zeros = np.zeros((1, 1, 32), dtype=np.float32)
    logits, *_ = step.run(None, {"ids": ids.numpy(), "state_h": zeros, "state_c": zeros})
    with torch.no_grad():
        assert_close(logits, model(ids)[0].logits)


def test_the_guide_s_generation_with_onnxruntime_alone_runs_as_written_and_writes_rnnkit_s_greedy_text(
        lm_run, cli_here, capsys):
    """docs/guide/export.md's example, its folder this run's and 20 characters instead of 200."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "export.md").read_text()
    code = re.search(r"## Generating text from the exported step.*?```python\n(.*?)```", guide, re.S).group(1)
    assert code.count('"runs/my/export"') == 1 and code.count("range(200)") == 1
    assert cli_here("export", lm_run).returncode == 0
    exec(code.replace('"runs/my/export"', repr(str(lm_run / "export"))).replace("range(200)", "range(20)"), {})
    model, tokenizer, _ = load_run(lm_run)
    want = tokenizer.decode(list(model.generate(tokenizer.encode("the "), 20, temperature=0)))
    assert capsys.readouterr().out == want + "\n"


def test_a_crf_tagger_run_exports_its_emissions_and_its_transitions_beside_them(tmp_path, cli_here):
    from conftest import TINY_LABELLED_FLAGS, _chunk_corpus

    (tmp_path / "train.txt").write_text(_chunk_corpus(30))
    run = tmp_path / "run"
    trained = cli_here("train", tmp_path / "train.txt", "--task", "tag", "--crf", "true", "--max-steps", 3,
                       "--out", run, *TINY_LABELLED_FLAGS)
    assert trained.returncode == 0, trained.stderr
    exported = cli_here("export", run, "--out", tmp_path / "onnx")
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["crf.json", "export.json", "tagger.onnx"]
    doc, crf = (json.loads((tmp_path / "onnx" / name).read_text()) for name in ("export.json", "crf.json"))
    model, tokenizer, config = load_run(run)
    assert doc["labels"] == config.labels == crf["labels"]
    assert doc["tokenizer"] == tokenizer.to_dict()
    torch.testing.assert_close(torch.tensor(crf["transitions"]), model.crf.transitions.detach())


@pytest.mark.slow
def test_a_successful_export_prints_one_line_and_nothing_on_stderr(lm_run, tmp_path, cli):
    """In a process of its own, where the exporter's C++ notes would reach the terminal's stderr."""
    result = cli("export", lm_run, "--out", tmp_path / "onnx")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout == f"wrote step.onnx and export.json to {tmp_path / 'onnx'}\n"


def test_the_python_api_exports_as_the_command_does(lm_run, tmp_path):
    import rnnkit

    folder, names = rnnkit.export_run(lm_run, tmp_path / "api")
    assert names == ["step"] and folder == tmp_path / "api"
    assert json.loads((folder / "export.json").read_text())["graphs"]["step"]["inputs"][1]["shape"] == [1, "B", 32]


def test_bad_exports_are_one_line_and_write_nothing(lm_run, tmp_path, cli_here, user_error):
    user_error(cli_here("export", tmp_path / "gone"), "gone")
    user_error(cli_here("export", lm_run, "--format", "torchscript", "--out", tmp_path / "x"), "invalid choice")
    assert not (tmp_path / "x").exists()


def test_a_cell_without_an_onnx_node_is_refused(tmp_path, cli_here, user_error):
    from conftest import TINY_LM_FLAGS, _make_text

    (tmp_path / "corpus.txt").write_text(_make_text(50))
    trained = cli_here("train", tmp_path / "corpus.txt", *TINY_LM_FLAGS, "--cell", "lnlstm", "--max-steps", 1,
                       "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    user_error(cli_here("export", tmp_path / "run"), "its lnlstm cell has no ONNX node")
    assert not (tmp_path / "run" / "export").exists()


def test_without_onnx_the_error_says_what_to_install(lm_run, tmp_path, cli_here, user_error, monkeypatch):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    user_error(cli_here("export", lm_run, "--out", tmp_path / "x"), "pip install 'rnnkit[export]'")
    assert not (tmp_path / "x").exists()
