"""rnnkit: recurrent neural networks on PyTorch.

Shape legend used throughout: B batch, T time, U target length, I input
features, E embedding, H hidden units, L layers, D directions, V vocabulary,
G gates.
"""

from rnnkit.config import DataConfig, ModelConfig, SampleConfig, TrainConfig
from rnnkit.data import (
                         BPETokenizer,
                         ByteTokenizer,
                         CharTokenizer,
                         LabelledData,
                         PairData,
                         SpeechData,
                         TextData,
                         WordTokenizer,
)
from rnnkit.errors import RnnkitError
from rnnkit.kernels import GRUCell, LSTMCell, RNNCell
from rnnkit.layers import Recurrent
from rnnkit.models import CTCRecognizer, LanguageModel, Seq2Seq, SequenceClassifier, SequenceTagger
from rnnkit.tasks import Trainer, export_run, load_run, read_data
from rnnkit.training import evaluate
from rnnkit.version import __version__

__all__ = ["__version__", "BPETokenizer", "ByteTokenizer", "CTCRecognizer", "CharTokenizer", "DataConfig", "GRUCell",
           "LSTMCell", "LabelledData", "LanguageModel", "ModelConfig", "PairData", "RNNCell", "Recurrent",
           "RnnkitError", "SampleConfig", "Seq2Seq", "SequenceClassifier", "SequenceTagger", "SpeechData", "TextData",
           "TrainConfig", "Trainer", "WordTokenizer", "evaluate", "export_run", "load_run", "read_data"]
