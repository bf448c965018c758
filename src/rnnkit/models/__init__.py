"""Task models over the recurrent layer."""

from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.ctc import CTCRecognizer
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import sample_next
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.tagger import SequenceTagger

__all__ = ["CTCRecognizer", "LanguageModel", "Seq2Seq", "SequenceClassifier", "SequenceTagger", "sample_next"]
