"""min-char-rnn in NumPy: a vanilla RNN character model with backpropagation
through time derived by hand, trained by Adagrad, as the lecture writes it.

Shapes follow the lecture: column vectors, x_t one-hot (V, 1), h_t (H, 1).

Forward, for t = 1 .. T::

    a_t = W_xh x_t + W_hh h_{t-1} + b_h            (H, 1)
    h_t = tanh(a_t)
    y_t = W_hy h_t + b_y                           (V, 1)  scores
    p_t = softmax(y_t) = exp(y_t - lse(y_t))       lse(y) = m + log Σ exp(y - m), m = max y
    L   = Σ_t -log p_t[c_t]                        c_t the next character

Backward, from t = T down to 1, with dh_{T+1} = 0 (derivation: the chain
rule through each line above; softmax with cross-entropy gives p - onehot)::

    dy_t   = p_t - onehot(c_t)
    dW_hy += dy_t h_t^T,  db_y += dy_t
    dh_t   = W_hy^T dy_t + W_hh^T da_{t+1}          the output's share and the next step's
    da_t   = (1 - h_t²) ⊙ dh_t                      tanh' = 1 - tanh²
    dW_xh += da_t x_t^T,  dW_hh += da_t h_{t-1}^T,  db_h += da_t

Each gradient is then clipped element-wise to [-5, 5], and Adagrad updates
each parameter θ with its running sum of squared gradients m::

    m += g ⊙ g,   θ -= lr g / sqrt(m + 1e-8)

Karpathy's script prints a smoothed loss, not the noisy loss of one
sequence: it starts at what uniform guessing costs a sequence and follows
each new loss L_n with weight 0.001 (:meth:`MinCharRNN.train` keeps it in
``smooth_loss``, every value in ``smoothed``)::

    s_0 = -log(1/V) * seq_length,   s_n = 0.999 s_{n-1} + 0.001 L_n

and samples by drawing each character from p_t and feeding it back as the
next input (:meth:`MinCharRNN.sample`), from the state training carries.

The lecture's worked example: the vocabulary h, e, l, o and the training
sequence "hello" (input "hell", targets "ello"). After "l" the model must
say "l" the first time and "o" the second, which only its hidden state can
tell apart:

>>> rnn = MinCharRNN("hello", hidden_size=8, seed=0)
>>> rnn.vocab
['h', 'e', 'l', 'o']
>>> losses = [rnn.step("hell", "ello")[0] for _ in range(200)]
>>> round(losses[0], 3), round(4 * float(np.log(4)), 3)  # four guesses among four characters
(5.545, 5.545)
>>> losses[-1] < 0.05
True
>>> rnn.greedy("h", 4)
'ello'
>>> rnn.sample("h", 4, np.random.default_rng(0), h=np.zeros((8, 1)))  # confident by now: as greedy
'ello'
"""

from __future__ import annotations

import numpy as np

CLIP = 5.0
EPS = 1e-8
SMOOTHING = 0.999  # the smoothed loss keeps this share of itself at each step
NAMES = ("W_xh", "W_hh", "W_hy", "b_h", "b_y")


def log_softmax(y: np.ndarray) -> np.ndarray:
    """log p = y - lse(y) along axis 0, with the maximum subtracted before exp: no overflow."""
    m = y.max(axis=0, keepdims=True)
    return y - (m + np.log(np.exp(y - m).sum(axis=0, keepdims=True)))


class MinCharRNN:
    """A vanilla RNN over the characters of ``text`` (in order of first appearance),
    weights N(0, 0.01²) and biases 0 as in the lecture, or ``weights`` given by name
    (``NAMES``; float64 arrays of the shapes above)."""

    def __init__(self, text: str, hidden_size: int = 100, lr: float = 0.1, seed: int = 0,
                 weights: dict[str, np.ndarray] | None = None):
        self.vocab = list(dict.fromkeys(text))
        self.index = {ch: i for i, ch in enumerate(self.vocab)}
        V, H = len(self.vocab), hidden_size
        if weights is None:
            rng = np.random.default_rng(seed)
            weights = {"W_xh": rng.standard_normal((H, V)) * 0.01, "W_hh": rng.standard_normal((H, H)) * 0.01,
                       "W_hy": rng.standard_normal((V, H)) * 0.01, "b_h": np.zeros((H, 1)), "b_y": np.zeros((V, 1))}
        self.params = {k: np.array(weights[k], dtype=np.float64) for k in NAMES}
        self.memory = {k: np.zeros_like(v) for k, v in self.params.items()}  # Adagrad's Σ g²
        self.lr = lr
        self.h = np.zeros((H, 1))  # carried from one sequence to the next
        self.smooth_loss: float | None = None  # s_n, from the first call of train on
        self.smoothed: list[float] = []  # s_1, s_2, ...: what Karpathy's script prints every 100 steps

    def ids(self, text: str) -> list[int]:
        """The ids of ``text``'s characters."""
        return [self.index[ch] for ch in text]

    def loss_and_gradients(self, inputs: list[int], targets: list[int], h0: np.ndarray):
        """L, the gradients by name (not clipped) and the last hidden state, for one sequence."""
        P = self.params
        V = len(self.vocab)
        xs, hs, log_ps = {}, {-1: h0}, {}
        loss = 0.0
        for t, (c, target) in enumerate(zip(inputs, targets)):
            xs[t] = np.zeros((V, 1))
            xs[t][c] = 1.0
            hs[t] = np.tanh(P["W_xh"] @ xs[t] + P["W_hh"] @ hs[t - 1] + P["b_h"])
            log_ps[t] = log_softmax(P["W_hy"] @ hs[t] + P["b_y"])
            loss -= log_ps[t][target, 0]
        grads = {k: np.zeros_like(v) for k, v in P.items()}
        da_next = np.zeros_like(h0)
        for t in reversed(range(len(inputs))):
            dy = np.exp(log_ps[t])
            dy[targets[t]] -= 1.0
            grads["W_hy"] += dy @ hs[t].T
            grads["b_y"] += dy
            dh = P["W_hy"].T @ dy + P["W_hh"].T @ da_next
            da = (1.0 - hs[t] ** 2) * dh
            grads["W_xh"] += da @ xs[t].T
            grads["W_hh"] += da @ hs[t - 1].T
            grads["b_h"] += da
            da_next = da
        return loss, grads, hs[len(inputs) - 1]

    def step(self, inputs: str | list[int], targets: str | list[int]) -> tuple[float, np.ndarray]:
        """One update on a sequence from the carried hidden state: (loss, new state)."""
        inputs = self.ids(inputs) if isinstance(inputs, str) else inputs
        targets = self.ids(targets) if isinstance(targets, str) else targets
        loss, grads, self.h = self.loss_and_gradients(inputs, targets, self.h)
        for k, g in grads.items():
            np.clip(g, -CLIP, CLIP, out=g)
            self.memory[k] += g * g
            self.params[k] -= self.lr * g / np.sqrt(self.memory[k] + EPS)
        return float(loss), self.h

    def reset(self) -> None:
        """Zero the carried hidden state h."""
        self.h = np.zeros_like(self.h)

    def train(self, text: str, steps: int, seq_length: int = 25) -> list[float]:
        """The lecture's loop: consecutive sequences of ``seq_length`` characters with the
        state carried, back to the start (and a zero state) at the end of the text."""
        data, losses, p = self.ids(text), [], 0
        if self.smooth_loss is None:  # uniform guessing among V characters, seq_length times
            self.smooth_loss = -np.log(1.0 / len(self.vocab)) * seq_length
        for n in range(steps):
            if p + seq_length + 1 > len(data) or n == 0:
                self.reset()
                p = 0
            losses.append(self.step(data[p:p + seq_length], data[p + 1:p + seq_length + 1])[0])
            self.smooth_loss = SMOOTHING * self.smooth_loss + (1 - SMOOTHING) * losses[-1]
            self.smoothed.append(self.smooth_loss)
            p += seq_length
        return losses

    def probabilities(self, c: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step from character id ``c`` and state h (H, 1): (p (V,), the new h)."""
        P = self.params
        x = np.zeros((len(self.vocab), 1))
        x[c] = 1.0
        h = np.tanh(P["W_xh"] @ x + P["W_hh"] @ h + P["b_h"])
        return np.exp(log_softmax(P["W_hy"] @ h + P["b_y"]))[:, 0], h

    def sample(self, start: str, length: int, rng: np.random.Generator, h: np.ndarray | None = None) -> str:
        """``length`` characters after ``start``, each drawn from p_t by ``rng`` and fed back as
        the next input, from state ``h`` (H, 1) (default: the state training carries, as
        Karpathy's script samples from its hprev). The softmax goes through log-sum-exp,
        where the script's exp(y) / Σ exp(y) would overflow for scores past ~709."""
        h = self.h if h is None else h
        c, out = self.index[start], []
        for _ in range(length):
            p, h = self.probabilities(c, h)
            c = int(rng.choice(len(self.vocab), p=p / p.sum()))  # p / Σp: rng.choice wants a sum of 1 to 1e-8
            out.append(self.vocab[c])
        return "".join(out)

    def greedy(self, start: str, length: int) -> str:
        """The most likely next character ``length`` times, from ``start`` and a zero state."""
        h = np.zeros_like(self.h)
        c, out = self.index[start], []
        for _ in range(length):
            p, h = self.probabilities(c, h)
            c = int(np.argmax(p))
            out.append(self.vocab[c])
        return "".join(out)
