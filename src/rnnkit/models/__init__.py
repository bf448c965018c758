"""Task models over the recurrent layer."""

from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier
from rnnkit.models.ctc import CTCRecognizer
from rnnkit.models.encoder import EncoderConfig, WordEncoderConfig
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.sampling import sample_next
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.models.tagger import SequenceTagger, TaggerConfig

__all__ = ["CTCRecognizer", "ClassifierConfig", "EncoderConfig", "LanguageModel", "LanguageModelConfig", "Seq2Seq",
           "Seq2SeqConfig", "SequenceClassifier", "SequenceTagger", "TaggerConfig", "WordEncoderConfig", "sample_next"]
