"""Tokenizers, corpora and batchers."""

from rnnkit.layers.recurrent import length_mask  # the mask of a padded batch, True at valid positions

from rnnkit.data.sequences import BucketBatcher, LabelledData, collate
from rnnkit.data.tables import read_conll, read_table
from rnnkit.data.text import StreamBatcher, TextData, read_text, split_ids
from rnnkit.data.tokenizers import ByteTokenizer, CharTokenizer, fit_tokenizer, tokenizer_from_dict
from rnnkit.data.words import BPETokenizer, WordTokenizer

__all__ = ["BPETokenizer", "BucketBatcher", "ByteTokenizer", "CharTokenizer", "LabelledData", "StreamBatcher",
           "TextData", "WordTokenizer", "collate", "fit_tokenizer", "length_mask", "read_conll", "read_table",
           "read_text", "split_ids", "tokenizer_from_dict"]
