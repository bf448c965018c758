"""rnnkit: recurrent neural networks on PyTorch.

Shape legend used throughout: B batch, T time, U target length, I input
features, E embedding, H hidden units, L layers, D directions, V vocabulary,
G gates.
"""

from rnnkit.config import DataConfig, ModelConfig, SampleConfig, TrainConfig
from rnnkit.data import BPETokenizer, ByteTokenizer, CharTokenizer, LabelledData, TextData, WordTokenizer
from rnnkit.errors import RnnkitError
from rnnkit.kernels import GRUCell, LSTMCell, RNNCell
from rnnkit.layers import Recurrent
from rnnkit.models import LanguageModel, SequenceClassifier, SequenceTagger
from rnnkit.training import Trainer, evaluate, load_run
from rnnkit.version import __version__

__all__ = ["__version__", "BPETokenizer", "ByteTokenizer", "CharTokenizer", "DataConfig", "GRUCell", "LSTMCell",
           "LabelledData", "LanguageModel", "ModelConfig", "RNNCell", "Recurrent", "RnnkitError", "SampleConfig",
           "SequenceClassifier", "SequenceTagger", "TextData", "TrainConfig", "Trainer", "WordTokenizer",
           "evaluate", "load_run"]
