"""An LSTM character model in NumPy with backpropagation through time derived
by hand: the reference the LSTM cell's autograd and C kernels are checked
against. Gates stacked as torch stacks them (input, forget, cell, output);
column vectors, x_t one-hot (V, 1), h_t and c_t (H, 1).

Forward, for t = 1 .. T::

    z_t = W_x x_t + W_h h_{t-1} + b                  (4H, 1) = [z_i; z_f; z_g; z_o]
    i = σ(z_i),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)
    y_t = W_y h_t + b_y,   L = Σ_t -log softmax(y_t)[c_t]

Backward, from t = T down to 1, dh_{T+1}-terms and dc_{T+1} zero::

    dy_t = p_t - onehot(c_t);   dW_y += dy_t h_t^T;   db_y += dy_t
    dh_t = W_y^T dy_t + W_h^T dz_{t+1}
    do   = dh_t ⊙ tanh(c_t)
    dc_t = dh_t ⊙ o ⊙ (1 - tanh²(c_t)) + f_{t+1} ⊙ dc_{t+1}     the cell state's own path
    di = dc_t ⊙ g,  df = dc_t ⊙ c_{t-1},  dg = dc_t ⊙ i
    dz = [di ⊙ i(1-i); df ⊙ f(1-f); dg ⊙ (1-g²); do ⊙ o(1-o)]     σ' = σ(1-σ), tanh' = 1 - tanh²
    dW_x += dz x_t^T,  dW_h += dz h_{t-1}^T,  db += dz

The path dc_t = f_{t+1} ⊙ dc_{t+1} + ... is why an LSTM's gradient need not
vanish: along the cell state each step multiplies it by a forget gate, not
by a matrix and a tanh slope.
"""

from __future__ import annotations

import numpy as np

from rnnkit.reference.minchar import log_softmax

NAMES = ("W_x", "W_h", "b", "W_y", "b_y")


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) without overflow: exp of a non-positive number only."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def loss_and_gradients(params: dict[str, np.ndarray], inputs: list[int], targets: list[int],
                       h0: np.ndarray, c0: np.ndarray):
    """L, the gradients by name and the last (h, c), for one sequence of token ids."""
    W_x, W_h, b, W_y, b_y = (params[k] for k in NAMES)
    V, H = W_y.shape
    hs, cs, gates, xs, log_ps = {-1: h0}, {-1: c0}, {}, {}, {}
    loss = 0.0
    for t, (token, target) in enumerate(zip(inputs, targets)):
        xs[t] = np.zeros((V, 1))
        xs[t][token] = 1.0
        z = W_x @ xs[t] + W_h @ hs[t - 1] + b
        i, f, o = sigmoid(z[:H]), sigmoid(z[H:2 * H]), sigmoid(z[3 * H:])
        g = np.tanh(z[2 * H:3 * H])
        cs[t] = f * cs[t - 1] + i * g
        hs[t] = o * np.tanh(cs[t])
        gates[t] = (i, f, g, o)
        log_ps[t] = log_softmax(W_y @ hs[t] + b_y)
        loss -= log_ps[t][target, 0]
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dz_next, dc_next, f_next = np.zeros((4 * H, 1)), np.zeros((H, 1)), np.zeros((H, 1))
    for t in reversed(range(len(inputs))):
        i, f, g, o = gates[t]
        dy = np.exp(log_ps[t])
        dy[targets[t]] -= 1.0
        grads["W_y"] += dy @ hs[t].T
        grads["b_y"] += dy
        dh = W_y.T @ dy + W_h.T @ dz_next
        tanh_c = np.tanh(cs[t])
        dc = dh * o * (1.0 - tanh_c ** 2) + f_next * dc_next
        dz = np.concatenate([dc * g * i * (1 - i), dc * cs[t - 1] * f * (1 - f), dc * i * (1 - g ** 2),
                             dh * tanh_c * o * (1 - o)])
        grads["W_x"] += dz @ xs[t].T
        grads["W_h"] += dz @ hs[t - 1].T
        grads["b"] += dz
        dz_next, dc_next, f_next = dz, dc, f
    last = len(inputs) - 1
    return loss, grads, (hs[last], cs[last])
