"""Reading labelled examples: tables of (text, label) and CoNLL column files.

- Tables (CSV, TSV): one example a row; CSV fields may be quoted, TSV
  fields are taken as they are. Columns are named by the header row
  or by 0-based index. ``"auto"`` finds them: a header cell called text,
  content, comment, message, sentence or review for the text, and label,
  class, category or target for the label; or, in a two-column file without
  a header (the SMS Spam Collection's ``ham<TAB>text``), the column with
  fewer distinct values is the label.
- CoNLL column files: one token a line, whitespace-separated columns, a
  blank line between sentences; in CoNLL-U files (``.conllu``) lines starting
  with ``#`` are comments, and multi-word ranges (``3-4``) and empty nodes
  (``5.1``) are skipped (elsewhere ``#`` and ``2.5`` are words, as in CoNLL-2000).

Every problem is one line naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from rnnkit.config import setting
from rnnkit.data.files import read_text
from rnnkit.errors import DataError

TEXT_NAMES = ("text", "content", "comment", "message", "sentence", "review")
LABEL_NAMES = ("label", "class", "category", "target")


@dataclass
class TextColumn:
    """The setting of the column that holds the texts of a table (a mixin for a data config)."""

    text_column: str = setting("classify, a conditioned lm: the text column, by header name or 0-based index "
                               "(auto: text, content, comment, message, sentence or review)", default="auto")


@dataclass
class LabelColumn:
    """The setting of the column that holds the labels of a table or series (a mixin for a data config)."""

    label_column: str = setting("classify, a series to tag: the label column (auto: label, class, category or "
                                "target)", default="auto")


@dataclass
class Table:
    """The rows of a table file: ``texts``, ``labels`` (None where the file has no
    label column), the original ``rows`` and ``header`` (for writing predictions
    in the same format), and the column indices used."""

    texts: list[str]
    labels: list[str] | None
    rows: list[list[str]]
    header: list[str] | None
    text_index: int
    label_index: int | None
    delimiter: str
    line_numbers: list[int]


def _delimiter(path: Path, sample: str) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    first = sample.splitlines()[0] if sample else ""
    return "\t" if "\t" in first else ","


def _quoting(delimiter: str) -> dict:
    """CSV quotes fields; tab-separated files neither quote nor escape (a text
    may start with a quote mark or hold a backslash, as messages of the SMS
    Spam Collection do). Their fields hold no tab or newline, having been split on them."""
    return {"quoting": csv.QUOTE_NONE, "quotechar": None} if delimiter == "\t" else {}


def _find(header: list[str] | None, wanted: str, known: tuple[str, ...]) -> int | None:
    """Index of column ``wanted`` (a name, an index, or "auto") or None."""
    if wanted.isdigit():
        return int(wanted)
    if header is None:
        return None
    lower = [h.strip().lower() for h in header]
    names = known if wanted == "auto" else (wanted.lower(),)
    for name in names:
        if name in lower:
            return lower.index(name)
    return None


def read_table(path: str | Path, text_column: str = "auto", label_column: str = "auto",
               require_labels: bool = True) -> Table:
    """Read a CSV/TSV file of examples; ``require_labels=False`` accepts a file
    without a label column (texts to predict)."""
    path = Path(path)
    content = read_text(path, "char")
    delimiter = _delimiter(path, content)
    reader = csv.reader(content.splitlines(keepends=True), delimiter=delimiter, **_quoting(delimiter))
    rows, line_numbers = [], []
    for row in reader:
        if row and any(cell.strip() for cell in row):
            rows.append(row)
            line_numbers.append(reader.line_num)
    if not rows:
        raise DataError(f"{path} has no rows")
    first = rows[0]
    names = {text_column.lower(), label_column.lower()} - {"auto"}
    known = set(TEXT_NAMES + LABEL_NAMES) if "auto" in (text_column, label_column) else set()
    has_header = any(c.strip().lower() in names | known for c in first)
    header = first if has_header else None
    if has_header:
        rows, line_numbers = rows[1:], line_numbers[1:]
    if not rows:
        raise DataError(f"{path} has a header but no examples")
    text_index = _find(header, text_column, TEXT_NAMES)
    label_index = _find(header, label_column, LABEL_NAMES)
    if header is None and "auto" in (text_column, label_column) and len(first) == 2:
        distinct = [len({r[i] for r in rows if len(r) > i}) for i in (0, 1)]
        guess_label = 0 if distinct[0] < distinct[1] else 1
        label_index = guess_label if label_index is None else label_index
        text_index = 1 - label_index if text_index is None else text_index
    if header is None and len(first) == 1 and text_index is None:
        text_index = 0  # one unnamed column: texts to predict
    columns = ", ".join(header) if header else f"{len(first)} unnamed"
    if text_index is None:
        raise DataError(f"{path}: cannot tell which column holds the text (columns: {columns}); "
                        f"pass --text-column NAME or a 0-based index")
    if label_index is None and require_labels:
        raise DataError(f"{path}: no label column {label_column!r} (columns: {columns}); "
                        f"pass --label-column NAME or a 0-based index")
    if label_index is not None and label_index >= len(first) and not require_labels:
        label_index = None  # texts to predict, without labels
    needed = max(text_index, label_index if label_index is not None else -1) + 1
    texts, labels = [], []
    for row, line in zip(rows, line_numbers):
        if len(row) < needed:
            raise DataError(f"{path} line {line}: {len(row)} column(s), expected at least {needed}; "
                            f"fix the row (a text with a {delimiter!r} must be quoted)")
        text = row[text_index]
        if not text.strip():
            raise DataError(f"{path} line {line}: empty text; remove the row or give it text")
        texts.append(text)
        if label_index is not None:
            label = row[label_index].strip()
            if not label:
                raise DataError(f"{path} line {line}: empty label; label every row")
            labels.append(label)
    return Table(texts, labels if label_index is not None else None, rows, header, text_index,
                 label_index, delimiter, line_numbers)


def write_table(out, table: Table, predicted: list[str], column: str = "prediction") -> None:
    """Write ``table``'s rows to the text stream ``out`` with the predicted labels
    appended as a last column (named ``column`` when the table has a header),
    in its own delimiter."""
    writer = csv.writer(out, delimiter=table.delimiter, lineterminator="\n", **_quoting(table.delimiter))
    if table.header is not None:
        writer.writerow(table.header + [column])
    for row, label in zip(table.rows, predicted):
        writer.writerow(row + [label])


@dataclass
class Sentences:
    """A CoNLL file: ``words`` and ``tags`` (None without a tag column) per
    sentence, the raw ``lines`` per sentence for writing predictions, and the
    first line number of each sentence."""

    words: list[list[str]]
    tags: list[list[str]] | None
    lines: list[list[str]]
    line_numbers: list[int]


_CONLLU_SKIP = re.compile(r"^\d+[-.]\d+$")


def read_conll(path: str | Path, word_column: int = 0, tag_column: int = -1,
               require_tags: bool = True) -> Sentences:
    """Sentences of a CoNLL column file. Columns are 0-based; negative counts
    from the end (-1: the last column, CoNLL-2000's chunk tag; CoNLL-U's UPOS
    is column 3). A file of one column is words without tags (to predict)."""
    path = Path(path)
    content = read_text(path, "char")
    conllu = path.suffix.lower() == ".conllu"  # "#" and "2.5" are words in other CoNLL files
    sentences, lines, starts = [], [], []
    cells_of, lines_of = [], []
    width = None
    for number, line in enumerate(content.splitlines() + [""], start=1):
        stripped = line.strip()
        if not stripped:
            if cells_of:
                sentences.append(cells_of)
                lines.append(lines_of)
            cells_of, lines_of = [], []
            continue
        if conllu and stripped.startswith("#"):
            continue
        cells = stripped.split("\t") if "\t" in stripped else stripped.split()
        if conllu and _CONLLU_SKIP.match(cells[0]):
            continue
        width = width or len(cells)
        if len(cells) != width:
            raise DataError(f"{path} line {number}: {len(cells)} column(s) where the file's first token "
                            f"line has {width}; every token line needs the same columns")
        if not cells_of:
            starts.append(number)
        cells_of.append(cells)
        lines_of.append(line)
    if not sentences:
        raise DataError(f"{path} has no sentences (token lines separated by blank lines)")
    has_tags = width > 1
    if require_tags and not has_tags:
        raise DataError(f"{path}: one column per line, so no tags to learn; give a file with a tag column")
    for column in (word_column, tag_column) if has_tags else (word_column,):
        if not -width <= column < width:
            raise DataError(f"{path}: no column {column} (lines have {width}); "
                            f"pass --word-column / --tag-column")
    words = [[c[word_column] for c in s] for s in sentences]
    tags = [[c[tag_column] for c in s] for s in sentences] if has_tags else None
    return Sentences(words, tags, lines, starts)


def write_conll(out, sentences: Sentences, predicted: list[list[str]]) -> None:
    """Write ``sentences``' token lines to the text stream ``out`` with each
    predicted tag appended as a last column (tab-separated where the file
    was), a blank line between sentences."""
    for lines, tags in zip(sentences.lines, predicted):
        for line, tag in zip(lines, tags):
            out.write(line.rstrip() + ("\t" if "\t" in line else " ") + tag + "\n")
        out.write("\n")
