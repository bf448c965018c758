"""The CTC recogniser and its data: the loss against ``F.ctc_loss`` and against
every alignment summed by brute force, padding invariance, gradcheck, a tiny
tone-sequence task learnt in seconds, the manifest checks of
:class:`SpeechData`, the saved feature settings, and shallow fusion's
language-model adapter."""

import json
import math
import time
from itertools import product

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.data.audio import log_mel, read_wav, stack_frames, write_wav
from rnnkit.data.batches import PairBatch
from rnnkit.data.chars import CharTokenizer
from rnnkit.data.sequences import IGNORE
from rnnkit.data.speech import (
    SpeechConfig,
    SpeechData,
    SpeechFeatures,
    collate_speech,
    frames_needed,
    label_ids,
    label_text,
)
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.ctc import CTCRecognizer, LanguageModelScorer
from rnnkit.models.language_model import LanguageModel
from rnnkit.tasks import CTCTask
from rnnkit.training.plots import plot_alignment

RATE = 8000
TONES = {"a": 500.0, "b": 1200.0, "c": 2500.0}  # Hz, one pure tone a symbol
TINY = dict(cell="lstm", hidden_size=5, num_layers=1, dropout=0.0)


def utterance(text: str, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """Each symbol a tone of 0.1-0.2 s, silences of 30-80 ms around and between them."""
    def silence():
        return np.zeros(int(rate * rng.uniform(0.03, 0.08)), np.float32)

    pieces = [silence()]
    for ch in text:
        t = np.arange(int(rate * rng.uniform(0.1, 0.2))) / rate
        pieces += [(0.5 * np.sin(2 * np.pi * TONES[ch] * t + rng.uniform(0, 2 * np.pi))).astype(np.float32),
                   silence()]
    return np.concatenate(pieces)


def write_manifest(folder, name: str, texts, seed: int = 0, rate: int = RATE, audio=None):
    """Wav files of ``texts`` (or the given ``audio`` arrays) and a manifest ``name`` listing them."""
    rng = np.random.default_rng(seed)
    (folder / name).mkdir(parents=True, exist_ok=True)
    lines = []
    for i, text in enumerate(texts):
        rel = f"{name}/{i:04d}.wav"
        write_wav(folder / rel, utterance(text, rng, rate) if audio is None else audio[i], rate)
        lines.append(f"{rel}\t{text}\n")
    path = folder / f"{name}.tsv"
    path.write_text("".join(lines))
    return path


def random_texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(TONES), size=rng.integers(2, 5))) for _ in range(n)]


def tiny_model(num_features=3, num_labels=3, seed=0, **settings):
    torch.manual_seed(seed)
    return CTCRecognizer(num_features, num_labels, **{**TINY, **settings}).double()


def random_batch(lengths, label_lists, num_features=3, seed=0):
    """A float64 batch of random features with the given lengths and label ids."""
    g = torch.Generator().manual_seed(seed)
    batch = collate_speech([torch.randn(n, num_features, generator=g) for n in lengths],
                           [np.array(t, dtype=np.int64) for t in label_lists])
    return batch._replace(x=batch.x.double())


def collapse(path):
    return tuple(k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k))


def edit_distance(a, b) -> int:
    row = list(range(len(b) + 1))
    for i, p in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, q in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (p != q))
    return row[-1]


# -- the loss -------------------------------------------------------------------


def test_loss_is_ctc_loss_per_label_and_the_sum_over_alignments():
    model = tiny_model()
    batch = random_batch([4, 3, 4], [[1, 2], [2], [1, 1]])
    x, x_lengths, y, y_lengths = batch
    loss, state = model.loss(batch)
    assert state is None
    log_probs, forward_loss = model(x, x_lengths, y, y_lengths)  # (B, T, V)
    assert forward_loss is not None and torch.equal(forward_loss, loss)  # loss(batch) is the forward pass's
    padded = y.clamp_min(0)  # ctc_loss reads only the first y_lengths[b] targets of row b
    direct = F.ctc_loss(log_probs.transpose(0, 1), padded, x_lengths, y_lengths, reduction="none")  # (B,)
    torch.testing.assert_close(loss, direct.sum() / y_lengths.sum())
    for b in range(3):  # every alignment of T <= 4 frames over V = 3 labels, summed
        lp, target = log_probs[b, :x_lengths[b]], tuple(y[b, :y_lengths[b]].tolist())
        paths = [p for p in product(range(3), repeat=len(lp)) if collapse(p) == target]
        brute = -torch.stack([lp[torch.arange(len(lp)), list(p)].sum() for p in paths]).logsumexp(0)
        torch.testing.assert_close(direct[b], brute)


def test_loss_stays_float32_under_bf16_autocast():
    model = CTCRecognizer(3, 4, **TINY)
    x = torch.randn(2, 5, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs, _ = model(x, torch.tensor([5, 3]))
    assert log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 5))


def test_padding_changes_neither_a_loss_nor_a_decoding():
    model = tiny_model(num_labels=4)
    lengths, labels = [7, 3, 5], [[1, 3, 3], [2], [3, 1]]
    batch = random_batch(lengths, labels, seed=1)
    x, x_lengths, y, y_lengths = batch
    x[1, 3:] = 123.0  # whatever sits in the padding
    x[2, 5:] = -7.0
    loss, _ = model.loss(batch)
    alone = []
    for b in range(3):
        one = PairBatch(x[b:b + 1, :lengths[b]], x_lengths[b:b + 1], y[b:b + 1, :len(labels[b])], y_lengths[b:b + 1])
        alone.append(model.loss(one)[0] * len(labels[b]))
        assert model.decode(one[0], one[1]) == [model.decode(x, x_lengths)[b]]
        assert model.decode(one[0], one[1], beam_size=3) == [model.decode(x, x_lengths, beam_size=3)[b]]
        torch.testing.assert_close(model.posteriors(one[0], one[1])[0], model.posteriors(x, x_lengths)[b])
    torch.testing.assert_close(loss, sum(alone) / sum(map(len, labels)))


def test_gradcheck_of_the_loss_in_the_input_features():
    model = tiny_model(hidden_size=3)
    x, x_lengths, y, y_lengths = random_batch([4, 3], [[1, 2], [2]], seed=2)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: model.loss(PairBatch(x, x_lengths, y, y_lengths))[0], (x,))


def test_decode_with_a_wider_beam_and_bad_arguments():
    model = tiny_model(num_labels=4)
    x, x_lengths, _, _ = random_batch([6, 2], [[1], [2]], seed=3)
    greedy = model.decode(x, x_lengths)
    posteriors = model.posteriors(x, x_lengths)
    assert [p.shape for p in posteriors] == [(6, 4), (2, 4)]
    assert greedy == [[k for i, k in enumerate(p.argmax(-1).tolist())
                       if k != 0 and (i == 0 or p.argmax(-1)[i - 1] != k)] for p in posteriors]
    assert len(model.decode(x, x_lengths, beam_size=8)) == 2
    with pytest.raises(ValueError, match="beam_size must be at least 1"):
        model.decode(x, x_lengths, beam_size=0)
    with pytest.raises(ValueError, match=r"expected features of shape \(B, T, 3\)"):
        model(x[..., :2], x_lengths)


# -- a task learnt end to end ------------------------------------------------------


def test_tone_sequences_are_learnt_in_seconds(tmp_path):
    train = write_manifest(tmp_path, "train", random_texts(120, seed=0), seed=0)
    test = write_manifest(tmp_path, "test", random_texts(30, seed=1), seed=1)
    data = SpeechData.from_file(train, SpeechConfig(mel_bands=16, frame_stack=3, val_fraction=0.0,
                                                    test_path=str(test), batch_size=16))
    assert (len(data.train), len(data.val), len(data.test)) == (120, 0, 30)
    assert data.vocab_size == 4 and data.num_features == 48
    torch.manual_seed(0)
    model = CTCRecognizer(data.num_features, data.vocab_size, cell="gru", hidden_size=32, num_layers=1,
                          dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batcher, start = data.batcher(seed=0), time.perf_counter()
    for epoch in range(12):  # 2-3 epochs usually do; stop once the training loss is low or 10 s are spent
        losses = []
        for batch in batcher.batches(epoch):
            loss, _ = model.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if np.mean(losses) < 0.1 or time.perf_counter() - start > 10:
            break
    model.eval()
    errors = {1: 0, 4: 0}
    for x, x_lengths, y, y_lengths in data.eval_batches("test"):
        gold = [y[b, :n].tolist() for b, n in enumerate(y_lengths.tolist())]
        for beam in errors:
            errors[beam] += sum(edit_distance(g, p) for g, p in zip(gold, model.decode(x, x_lengths, beam)))
    total = sum(map(len, data.test.transcripts))
    assert errors[1] / total < 0.2, (errors, total, epoch, np.mean(losses))
    assert errors[4] / total < 0.2, (errors, total)
    model.train()  # the trainer validates between steps: the error rate is best path's, and dropout stays on
    validated = CTCTask().validate(model, data, "test")
    assert validated["token_error_rate"] == pytest.approx(errors[1] / total) and model.training


# -- the data ------------------------------------------------------------------------


def test_batches_hold_features_and_label_ids(tmp_path):
    texts = ["ab", "cab", "bb", "acca"]
    path = write_manifest(tmp_path, "train", texts)
    data = SpeechData.from_file(path, SpeechConfig(mel_bands=8, frame_stack=2, val_fraction=0.0))
    assert data.config.sample_rate == RATE  # inferred from the first file, and kept for the run
    assert data.train.transcripts == texts and data.train.skipped == 0
    x, x_lengths, y, y_lengths = next(data.eval_batches("train", batch_size=4))
    assert x.dtype == torch.float32 and x.shape == (4, int(x_lengths.max()), 16)
    for b, text in enumerate(texts):
        assert label_text(data.target_tokenizer, y[b, :y_lengths[b]]) == text
        assert (y[b, y_lengths[b]:] == IGNORE).all() and (x[b, x_lengths[b]:] == 0).all()
        assert y[b, :y_lengths[b]].min() >= 1  # 0 is the blank
        torch.testing.assert_close(x[b, :x_lengths[b]], data.tokenizer.read(data.train.audio[b]))
    assert label_ids(data.target_tokenizer, "abc").tolist() == [1, 2, 3]
    assert sum(len(batch.x) for batch in data.batcher(0).batches(0)) == 4


def test_frames_needed_counts_a_blank_between_repeats():
    assert [frames_needed(t) for t in ("a", "ab", "aa", "abba", "aaa")] == [1, 2, 3, 5, 5]


def test_a_transcript_too_long_for_its_audio_is_refused_or_skipped(tmp_path):
    rng = np.random.default_rng(0)
    audio = [utterance("ab", rng), 0.1 * np.ones(400, np.float32), utterance("ca", rng)]  # 400 samples: 6 frames
    path = write_manifest(tmp_path, "train", ["ab", "abcabca", "ca"], audio=audio)
    config = SpeechConfig(mel_bands=8, val_fraction=0.0)
    with pytest.raises(DataError) as error:
        SpeechData.from_file(path, config)
    message = str(error.value)
    assert f"{path} line 2" in message and "needs 7 steps" in message and "gives 6" in message
    assert "--frame-stack" in message and "--long-transcripts skip" in message and "\n" not in message
    data = SpeechData.from_file(path, SpeechConfig(mel_bands=8, val_fraction=0.0,
                                                   long_transcripts="skip"))
    assert data.train.skipped == 1 and data.train.transcripts == ["ab", "ca"]


def test_feature_statistics_come_from_the_training_split_only(tmp_path):
    train = write_manifest(tmp_path, "train", random_texts(6, seed=0))
    val = write_manifest(tmp_path, "val", ["cc", "cccc"], seed=5)  # all high tones: other statistics
    data = SpeechData.from_file(train, SpeechConfig(mel_bands=8, frame_stack=2, val_path=str(val)))
    raw = [stack_frames(log_mel(read_wav(p), RATE, 8), 2) for p in data.train.audio]
    every = torch.cat(raw).double()
    torch.testing.assert_close(data.tokenizer.mean, every.mean(0).float())
    torch.testing.assert_close(data.tokenizer.std, every.std(0, correction=0).float())
    z = torch.cat(data.train.examples.ids)
    torch.testing.assert_close(z.mean(0), torch.zeros(16), atol=1e-4, rtol=0)
    val_raw = stack_frames(log_mel(read_wav(data.val.audio[0]), RATE, 8), 2)
    torch.testing.assert_close(data.val.examples.ids[0], (val_raw - data.tokenizer.mean) / data.tokenizer.std)


def test_random_split_is_seeded_and_disjoint(tmp_path):
    path = write_manifest(tmp_path, "train", random_texts(20, seed=0))
    config = SpeechConfig(mel_bands=8, val_fraction=0.2, test_fraction=0.1)
    first, again = SpeechData.from_file(path, config), SpeechData.from_file(path, config)
    assert (len(first.train), len(first.val), len(first.test)) == (14, 4, 2)
    assert first.val.audio == again.val.audio
    assert not set(first.train.audio) & set(first.val.audio + first.test.audio)
    assert first.digest == again.digest and len(first.digest) == 64


def test_the_sample_rate_is_enforced(tmp_path):
    rng = np.random.default_rng(0)
    path = write_manifest(tmp_path, "train", ["ab", "ba"])
    write_wav(tmp_path / "train" / "0001.wav", utterance("ba", rng, 16000), 16000)
    with pytest.raises(DataError, match="is 16000 Hz but the model reads 8000 Hz"):
        SpeechData.from_file(path, SpeechConfig(mel_bands=8, val_fraction=0.0))
    with pytest.raises(DataError, match="0000.wav is 8000 Hz but the model reads 16000 Hz"):
        SpeechData.from_file(path, SpeechConfig(mel_bands=8, val_fraction=0.0, sample_rate=16000))


def test_a_character_unseen_in_training_is_an_error_naming_the_manifest(tmp_path):
    train = write_manifest(tmp_path, "train", ["ab", "ba"])
    val = write_manifest(tmp_path, "val", ["ab", "abc"])
    with pytest.raises(DataError) as error:
        SpeechData.from_file(train, SpeechConfig(mel_bands=8, val_path=str(val)))
    assert str(error.value).startswith(f"{val} has 1 character(s) the training transcripts lack: 'c' (line 2)")


def test_speech_features_round_trip_through_json(tmp_path):
    path = write_manifest(tmp_path, "train", random_texts(4, seed=0))
    data = SpeechData.from_file(path, SpeechConfig(mel_bands=10, frame_stack=3, val_fraction=0.0))
    saved = json.loads(json.dumps(data.tokenizer.to_dict()))
    assert saved["kind"] == "speech" and saved["sample_rate"] == RATE
    restored = SpeechFeatures.from_dict(saved)
    assert restored.num_features == 30
    samples = read_wav(data.train.audio[1], RATE)
    assert torch.equal(restored.transform(samples), data.tokenizer.transform(samples))
    assert torch.equal(restored.transform(samples), data.train.examples.ids[1])
    other = write_manifest(tmp_path, "other", ["cc", "aaa"], seed=3)  # a resumed run keeps its statistics
    again = SpeechData.from_file(other, data.config, data.target_tokenizer, restored)
    assert torch.equal(again.train.examples.ids[1], restored.read(again.train.audio[1]))
    assert torch.equal(again.tokenizer.mean, data.tokenizer.mean)
    with pytest.raises(ConfigError, match="mel_bands is 40 but the run's features were computed with 10"):
        SpeechData.from_file(other, SpeechConfig(), data.target_tokenizer, restored)


# -- shallow fusion --------------------------------------------------------------------


def test_language_model_scorer_reads_the_lm_at_each_labels_character():
    torch.manual_seed(0)
    lm_tokenizer = CharTokenizer.fit("\nthe cab ba")  # more characters than the transcripts, other ids
    target_tokenizer = CharTokenizer.fit("cab")
    lm = LanguageModel(lm_tokenizer.vocab_size, cell="lstm", hidden_size=8, num_layers=1, embedding_dim=4,
                       dropout=0.0)
    scorer = LanguageModelScorer(lm, lm_tokenizer, target_tokenizer)
    b = int(label_ids(target_tokenizer, "b")[0])

    def lm_log_probs(text):
        (logits, _), _ = lm(torch.from_numpy(lm_tokenizer.encode(text))[None])  # (1, T, V_lm)
        return logits[0, -1].log_softmax(-1)

    at = torch.from_numpy(lm_tokenizer.encode("abc"))  # the LM's ids of labels 1, 2, 3
    state = scorer.initial()
    row = scorer.log_probs(state)
    assert row.shape == (4,) and row[0] == -math.inf
    torch.testing.assert_close(row[1:], lm_log_probs("\n")[at].detach())
    state = scorer.advance(scorer.advance(state, b), 1)
    torch.testing.assert_close(scorer.log_probs(state)[1:], lm_log_probs("\nba")[at].detach())


def test_a_character_the_lm_never_saw_is_an_error():
    lm_tokenizer = CharTokenizer.fit("\nab")
    lm = LanguageModel(lm_tokenizer.vocab_size, cell="gru", hidden_size=4, num_layers=1, embedding_dim=4)
    with pytest.raises(DataError, match=r"never saw 1 character\(s\) of the transcripts: 'z'"):
        LanguageModelScorer(lm, lm_tokenizer, CharTokenizer.fit("abz"))


# -- the command line ------------------------------------------------------------------


def _tone_recordings(folder, speakers=("ann", "bob"), takes=8):
    """An FSDD-like folder: each digit a tone of its own pitch, 0.1-0.15 s."""
    folder.mkdir()
    for s, speaker in enumerate(speakers):
        for digit in range(10):
            for take in range(takes):
                n = 800 + 40 * take + 20 * s
                tone = 0.3 * np.sin(2 * np.pi * (300 + 250 * digit) * np.arange(n) / 8000)
                write_wav(folder / f"{digit}_{speaker}_{take}.wav", tone, 8000)
    return folder


@pytest.mark.slow
def test_digits_train_eval_and_predict_through_the_command_line(tmp_path, cli_here, user_error):
    recordings = _tone_recordings(tmp_path / "recordings")
    # the tones fill their recordings, with no quiet frames for the pauses to copy: silent pauses
    built = cli_here("digits", recordings, tmp_path / "digits", "--num-train", 300, "--num-test", 40,
                     "--held-out-speaker", "none", "--pause-fill", "zeros")
    assert built.returncode == 0, built.stderr
    run = tmp_path / "run"
    trained = cli_here("train", tmp_path / "digits" / "train.tsv", "--task", "ctc", "--test-path",
                       tmp_path / "digits" / "test.tsv", "--frame-stack", 3, "--hidden-size", 32, "--num-layers", 1,
                       "--mel-bands", 20, "--max-steps", 90, "--lr", "0.01", "--eval-every", 90, "--batch-size", 16,
                       "--device", "cpu", "--out", run)
    assert trained.returncode == 0, trained.stderr
    evaluated = cli_here("eval", run, "--split", "test", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert metrics["token_error_rate"] < 0.2 and metrics["utterances"] == 40
    assert metrics["string_accuracy"] == 1 - metrics["sequence_error_rate"]  # the old key, for this version
    assert evaluated.stderr.count("warning: the JSON key string_accuracy is deprecated; use 1 - sequence_error_rate"
                                  ) == 1
    predicted = cli_here("predict", run, tmp_path / "digits" / "test.tsv", "--beam-size", 4,
                         "--posteriorgram", tmp_path / "p.png")
    assert predicted.returncode == 0, predicted.stderr
    lines = [line.split("\t") for line in predicted.stdout.splitlines()]
    assert len(lines) == 40 and all(text.isdigit() or text == "" for _, text in lines)
    assert "sequence error rate" in predicted.stderr and "token error rate" in predicted.stderr
    assert (tmp_path / "p.png").stat().st_size > 1000
    write_wav(tmp_path / "fast.wav", np.zeros(800), 16000)
    user_error(cli_here("predict", run, tmp_path / "fast.wav"), "16000 Hz")
    user_error(cli_here("eval", run, "--length-penalty", 1), "--length-penalty needs a seq2seq run")


def test_bad_speech_inputs_through_the_command_line(tmp_path, cli_here, user_error):
    recordings = _tone_recordings(tmp_path / "recordings", takes=6)
    (tmp_path / "gone.tsv").write_text(f"{recordings / '1_ann_5.wav'}\t1\nmissing.wav\t2\n")
    user_error(cli_here("train", tmp_path / "gone.tsv", "--task", "ctc", "--out", tmp_path / "r"),
               "audio file missing.wav does not exist")
    (tmp_path / "long.tsv").write_text(f"{recordings / '1_ann_5.wav'}\t{'1' * 200}\n")
    user_error(cli_here("train", tmp_path / "long.tsv", "--task", "ctc", "--out", tmp_path / "r"),
               "--long-transcripts skip")
    user_error(cli_here("digits", tmp_path / "nowhere", tmp_path / "d"), "nowhere")
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_a_long_posteriorgram_labels_every_kth_frame_with_its_time(tmp_path):
    """200 frames get 50 time labels (every 4th), not an unlabelled axis of frame indices; 11 rows keep all."""
    rows, times = ["blank"] + [str(d) for d in range(10)], [str(20 * t) for t in range(200)]
    fig = plot_alignment(np.random.default_rng(0).random((11, 200)), rows, times, tmp_path / "p.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == times[::4]
    assert [t.get_text() for t in ax.get_yticklabels()] == rows and (tmp_path / "p.png").stat().st_size > 1000
