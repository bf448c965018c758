"""Task models over the recurrent layer."""

from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import sample_next
from rnnkit.models.tagger import SequenceTagger

__all__ = ["LanguageModel", "SequenceClassifier", "SequenceTagger", "sample_next"]
