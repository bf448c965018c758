"""The NumPy references with hand-derived BPTT (rnnkit.reference) against torch's
autograd on rnnkit's explicit engine, in float64: the same gradients, and
min-char-rnn's training the same losses step for step."""

import doctest

import numpy as np
import pytest
import torch

from rnnkit import LanguageModel
from rnnkit.data.batches import StreamBatch
from rnnkit.reference import MinCharRNN, lstm, minchar

V, H, T = 6, 5, 9


def test_the_lecture_s_hello_example():
    assert doctest.testmod(minchar, raise_on_error=False).failed == 0


def explicit_lm(cell: str) -> LanguageModel:
    model = LanguageModel(V, cell=cell, hidden_size=H, num_layers=1, embedding_dim=0, dropout=0.0,
                          engine="explicit").double()
    model.rnn.cells[0].bias_hh.requires_grad_(False)  # the reference has one bias: b_ih plays it
    with torch.no_grad():
        model.rnn.cells[0].bias_hh.zero_()
    return model


def load(model: LanguageModel, W_x, W_h, b, W_y, b_y) -> None:
    cell = model.rnn.cells[0]
    with torch.no_grad():
        for p, w in ((cell.weight_ih, W_x), (cell.weight_hh, W_h), (cell.bias_ih, b[:, 0]),
                     (model.head.weight, W_y), (model.head.bias, b_y[:, 0])):
            p.copy_(torch.from_numpy(w))


def sequence(seed: int):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, T + 1)
    return ids[:-1].tolist(), ids[1:].tolist(), torch.from_numpy(ids[None, :-1]), torch.from_numpy(ids[None, 1:])


def torch_gradients(model, x, y, state):
    model.zero_grad()
    loss, _ = model.loss(StreamBatch(x, y), state)
    (loss * T).backward()  # the model's loss is the mean over the steps, the reference's the sum
    cell = model.rnn.cells[0]
    return (loss * T).item(), [p.grad.numpy() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                                         model.head.weight, model.head.bias)]


def test_min_char_rnn_s_hand_derived_gradients_are_autograd_s():
    rng = np.random.default_rng(1)
    shapes = {"W_xh": (H, V), "W_hh": (H, H), "W_hy": (V, H), "b_h": (H, 1), "b_y": (V, 1)}
    weights = {k: rng.normal(scale=0.7, size=s) for k, s in shapes.items()}  # large enough that tanh bends
    reference = MinCharRNN("abcdef", hidden_size=H, weights=weights)
    inputs, targets, x, y = sequence(2)
    h0 = rng.normal(scale=0.5, size=(H, 1))
    loss, grads, h_last = reference.loss_and_gradients(inputs, targets, h0)
    model = explicit_lm("rnn")
    load(model, *(weights[k] for k in ("W_xh", "W_hh", "b_h", "W_hy", "b_y")))
    torch_loss, torch_grads = torch_gradients(model, x, y, (torch.from_numpy(h0.T[None]),))
    assert torch_loss == pytest.approx(loss, rel=1e-12)
    for name, ours, theirs in zip(("W_xh", "W_hh", "b_h", "W_hy", "b_y"), (grads[k] for k in
                                  ("W_xh", "W_hh", "b_h", "W_hy", "b_y")), torch_grads):
        np.testing.assert_allclose(ours.reshape(theirs.shape), theirs, rtol=1e-8, atol=1e-12, err_msg=name)


def test_the_lstm_s_hand_derived_gradients_are_autograd_s():
    rng = np.random.default_rng(3)
    params = {"W_x": rng.normal(scale=0.7, size=(4 * H, V)), "W_h": rng.normal(scale=0.7, size=(4 * H, H)),
              "b": rng.normal(scale=0.3, size=(4 * H, 1)), "W_y": rng.normal(scale=0.7, size=(V, H)),
              "b_y": rng.normal(scale=0.3, size=(V, 1))}
    inputs, targets, x, y = sequence(4)
    h0, c0 = rng.normal(scale=0.5, size=(H, 1)), rng.normal(scale=0.5, size=(H, 1))
    loss, grads, _ = lstm.loss_and_gradients(params, inputs, targets, h0, c0)
    model = explicit_lm("lstm")
    load(model, *(params[k] for k in ("W_x", "W_h", "b", "W_y", "b_y")))
    state = (torch.from_numpy(h0.T[None]), torch.from_numpy(c0.T[None]))
    torch_loss, torch_grads = torch_gradients(model, x, y, state)
    assert torch_loss == pytest.approx(loss, rel=1e-12)
    for name, theirs in zip(("W_x", "W_h", "b", "W_y", "b_y"), torch_grads):
        np.testing.assert_allclose(grads[name].reshape(theirs.shape), theirs, rtol=1e-8, atol=1e-12, err_msg=name)


def test_min_char_rnn_and_rnnkit_train_the_same_losses_for_100_steps(make_text):
    """The same initial weights, the same Adagrad (m += g², θ -= lr g / sqrt(m + 1e-8)) after the
    same element-wise clipping at 5, the state carried over consecutive sequences of 25."""
    text = make_text(40)
    reference = MinCharRNN(text, hidden_size=16, seed=0)
    vocab = len(reference.vocab)
    model = LanguageModel(vocab, cell="rnn", hidden_size=16, num_layers=1, embedding_dim=0, dropout=0.0,
                          engine="explicit").double()
    cell = model.rnn.cells[0]
    cell.bias_hh.requires_grad_(False)
    with torch.no_grad():
        cell.bias_hh.zero_()
    P = reference.params
    load(model, P["W_xh"], P["W_hh"], P["b_h"], P["W_hy"], P["b_y"])
    expected = reference.train(text, steps=100, seq_length=25)
    data = torch.tensor(reference.ids(text))
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, model.head.weight, model.head.bias]
    memory = [torch.zeros_like(p) for p in params]
    losses, state, p = [], None, 0
    for n in range(100):
        if p + 26 > len(data) or n == 0:
            state, p = None, 0
        x, y = data[None, p:p + 25], data[None, p + 1:p + 26]
        model.zero_grad()
        loss, state = model.loss(StreamBatch(x, y), state)
        (loss * 25).backward()
        state = tuple(s.detach() for s in state)
        with torch.no_grad():
            for param, m in zip(params, memory):
                g = param.grad.clamp(-5, 5)
                m += g * g
                param -= 0.1 * g / torch.sqrt(m + 1e-8)
        losses.append(loss.item() * 25)
        p += 25
    np.testing.assert_allclose(losses, expected, rtol=1e-9)
    assert expected[-1] < 0.8 * expected[0]  # and it learnt something


def test_min_char_rnn_s_smoothed_loss_is_karpathy_s_running_average(make_text):
    """s_0 = -log(1/V) * seq_length and s_n = 0.999 s_(n-1) + 0.001 L_n, checked against the closed
    form s_n = 0.999^n s_0 + 0.001 sum_k 0.999^(n-k) L_k; a second call goes on from where it was."""
    text = make_text(40)
    rnn = MinCharRNN(text, hidden_size=16, seed=0)
    losses = rnn.train(text, steps=150, seq_length=25) + rnn.train(text, steps=50, seq_length=25)
    s0 = np.log(len(rnn.vocab)) * 25
    n = np.arange(1, len(losses) + 1)
    closed = [0.999 ** k * s0 + 0.001 * sum(0.999 ** (k - j) * losses[j - 1] for j in range(1, k + 1))
              for k in n]
    np.testing.assert_allclose(rnn.smoothed, closed, rtol=1e-12)
    assert rnn.smooth_loss == rnn.smoothed[-1]
    assert losses[-1] < 0.8 * losses[0] and rnn.smooth_loss < s0  # it learnt, and the average follows slowly
    assert rnn.smooth_loss > np.mean(losses[-20:])


def test_min_char_rnn_s_sampler_draws_from_its_softmax_and_feeds_the_draw_back():
    V = 4
    rng = np.random.default_rng(5)
    target = np.array([0.1, 0.2, 0.3, 0.4])
    # scores independent of the state: every character is drawn from `target`
    weights = {"W_xh": rng.normal(size=(3, V)), "W_hh": rng.normal(size=(3, 3)), "W_hy": np.zeros((V, 3)),
               "b_h": np.zeros((3, 1)), "b_y": np.log(target)[:, None] + 800.0}  # exp(800) overflows: lse must not
    rnn = MinCharRNN("abcd", hidden_size=3, weights=weights)
    text = rnn.sample("a", 20_000, np.random.default_rng(0))
    freq = np.array([text.count(c) for c in "abcd"]) / len(text)
    assert np.all(np.abs(freq - target) < 4 * np.sqrt(target * (1 - target) / len(text)))
    assert rnn.sample("a", 50, np.random.default_rng(1)) == rnn.sample("a", 50, np.random.default_rng(1))
    assert rnn.sample("a", 50, np.random.default_rng(1)) != rnn.sample("a", 50, np.random.default_rng(2))
    # a character determines the next one (a -> b -> c -> d -> a) only through the input fed back
    W_xh = np.eye(V) * 10.0
    cycle = {"W_xh": W_xh, "W_hh": np.zeros((V, V)), "W_hy": 10.0 * np.roll(np.eye(V), 1, axis=0),
             "b_h": np.zeros((V, 1)), "b_y": np.zeros((V, 1))}
    assert MinCharRNN("abcd", hidden_size=V, weights=cycle).sample("a", 8, np.random.default_rng(0)) == "bcdabcda"


def test_min_char_rnn_s_sampler_and_torch_s_softmax_give_the_same_probabilities():
    rng = np.random.default_rng(7)
    shapes = {"W_xh": (H, V), "W_hh": (H, H), "W_hy": (V, H), "b_h": (H, 1), "b_y": (V, 1)}
    weights = {k: rng.normal(size=s) for k, s in shapes.items()}
    rnn = MinCharRNN("abcdef", hidden_size=H, weights=weights)
    h0 = rng.normal(size=(H, 1))
    p, h = rnn.probabilities(2, h0)
    W = {k: torch.from_numpy(v) for k, v in weights.items()}
    h_torch = torch.tanh(W["W_xh"][:, 2:3] + W["W_hh"] @ torch.from_numpy(h0) + W["b_h"])
    np.testing.assert_allclose(h, h_torch.numpy(), rtol=1e-12)
    np.testing.assert_allclose(p, torch.softmax((W["W_hy"] @ h_torch + W["b_y"])[:, 0], 0).numpy(), rtol=1e-12)
