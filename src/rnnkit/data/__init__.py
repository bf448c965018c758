"""Tokenizers, corpora and batchers."""

from rnnkit.data.batches import LabelledBatch, PairBatch, StreamBatch
from rnnkit.data.chars import ByteTokenizer, CharTokenizer
from rnnkit.data.files import read_text
from rnnkit.data.pairs import PairConfig, PairData
from rnnkit.data.sequences import BucketBatcher, LabelledData, collate
from rnnkit.data.speech import SpeechConfig, SpeechData
from rnnkit.data.tables import read_conll, read_table
from rnnkit.data.text import StreamBatcher, TextData, split_ids
from rnnkit.data.tokenizers import fit_tokenizer, tokenizer_from_dict
from rnnkit.data.words import BPETokenizer, WordTokenizer

__all__ = ["BPETokenizer", "BucketBatcher", "ByteTokenizer", "CharTokenizer", "LabelledBatch", "LabelledData",
           "PairBatch", "PairConfig", "PairData", "SpeechConfig", "SpeechData", "StreamBatch", "StreamBatcher",
           "TextData", "WordTokenizer", "collate", "fit_tokenizer", "read_conll", "read_table", "read_text",
           "split_ids", "tokenizer_from_dict"]
