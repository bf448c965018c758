"""An experiment's result as data: its table's columns and rows of plain values
(numbers, strings, tuples of them), how each column prints, and a note; one
formatter, :meth:`Table.markdown`, prints every experiment's table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Format = str | Callable[[Any], str]


@dataclass
class Table:
    """Rows of plain values under ``columns``, one value a column.

    ``formats`` holds a column's way to print a value: a ``str.format``
    template (``"{:.3f}"``; a tuple value fills its fields in order, as
    ``"{:.3f} ({})"`` prints (loss, step)) or a function of the value; by
    default ``"{}"``. ``note`` is printed below the table.
    """

    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)
    formats: tuple[Format, ...] = ()
    note: str = ""

    def __post_init__(self):
        self.formats = self.formats or ("{}",) * len(self.columns)
        assert len(self.formats) == len(self.columns), (self.columns, self.formats)
        assert all(len(row) == len(self.columns) for row in self.rows), (self.columns, self.rows)

    def row(self, first) -> dict[str, Any]:
        """The row whose first value is ``first``, as {column: value}."""
        found = [row for row in self.rows if row[0] == first]
        if len(found) != 1:
            raise KeyError(f"{len(found)} rows start with {first!r}; expected one")
        return dict(zip(self.columns, found[0]))

    def markdown(self) -> str:
        """The table in markdown, one line a row, and the note after a blank line."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        for row in self.rows:
            lines.append("| " + " | ".join(cell(value, how) for value, how in zip(row, self.formats)) + " |")
        return "\n".join(lines) + (f"\n\n{self.note}" if self.note else "")


def cell(value, how: Format) -> str:
    """``value`` as a table cell: ``how`` a format string (a tuple fills several fields) or a function."""
    if callable(how):
        return how(value)
    return how.format(*value) if isinstance(value, tuple) else how.format(value)
