"""Tokenizers, corpora and batchers."""

from rnnkit.data.text import StreamBatcher, TextData, read_text, split_ids
from rnnkit.data.tokenizers import ByteTokenizer, CharTokenizer, tokenizer_from_dict

__all__ = ["ByteTokenizer", "CharTokenizer", "StreamBatcher", "TextData", "read_text", "split_ids",
           "tokenizer_from_dict"]
