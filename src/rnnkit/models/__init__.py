"""Task models over the recurrent layer."""

from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import sample_next

__all__ = ["LanguageModel", "sample_next"]
