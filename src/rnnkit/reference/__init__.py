"""The lectures' algorithms in NumPy, with backpropagation through time
derived by hand: min-char-rnn (:mod:`.minchar`: a vanilla RNN trained by
Adagrad) and an LSTM (:mod:`.lstm`). They import nothing of rnnkit's; the
tests hold rnnkit's cells and autograd to them."""

from rnnkit.reference.minchar import MinCharRNN, log_softmax

__all__ = ["MinCharRNN", "log_softmax"]
