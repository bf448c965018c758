"""rnnkit: recurrent neural networks on PyTorch.

Shape legend used throughout: B batch, T time, U target length, I input
features, E embedding, H hidden units, L layers, D directions, V vocabulary,
G gates.
"""

__version__ = "0.1.0"

from rnnkit.cells import GRUCell, LSTMCell, RNNCell  # noqa: E402
from rnnkit.config import DataConfig, ModelConfig, SampleConfig, TrainConfig  # noqa: E402
from rnnkit.data import (BPETokenizer, ByteTokenizer, CharTokenizer, LabelledData, TextData,  # noqa: E402
                         WordTokenizer)
from rnnkit.errors import RnnkitError  # noqa: E402
from rnnkit.layers import Recurrent  # noqa: E402
from rnnkit.models import LanguageModel, SequenceClassifier, SequenceTagger  # noqa: E402
from rnnkit.training import Trainer, evaluate, load_run  # noqa: E402

__all__ = ["BPETokenizer", "ByteTokenizer", "CharTokenizer", "DataConfig", "GRUCell", "LSTMCell",
           "LabelledData", "LanguageModel", "ModelConfig", "RNNCell", "Recurrent", "RnnkitError", "SampleConfig",
           "SequenceClassifier", "SequenceTagger", "TextData", "TrainConfig", "Trainer", "WordTokenizer",
           "evaluate", "load_run"]
