"""rnnkit: recurrent neural networks on PyTorch.

Shape legend used throughout: B batch, T time, U target length, I input
features, E embedding, H hidden units, L layers, D directions, V vocabulary,
G gates.
"""

__version__ = "0.1.0"
