"""What both benchmarks compare rnnkit with: the torch.nn.LSTM language model a
user would write, and where the shared tiny-shakespeare corpus lies."""

from pathlib import Path

from torch import nn

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


class PlainLSTM(nn.Module):
    """Embedding E -> L x H torch.nn.LSTM -> linear, with the forward of
    rnnkit's LanguageModel (``(logits, loss=None, state)``) so that
    ``rnnkit.evaluate`` scores both alike."""

    def __init__(self, V: int, E: int = 64, H: int = 512, L: int = 2):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.lstm = nn.LSTM(E, H, L, batch_first=True)
        self.head = nn.Linear(H, V)

    def forward(self, idx, targets=None, state=None):
        h, state = self.lstm(self.emb(idx), state)
        return self.head(h), None, state
