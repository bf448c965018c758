"""What a task serves over HTTP (``rnnkit serve RUN``): its endpoints.

A task's :meth:`rnnkit.tasks.base.Task.endpoints` returns a dict of
:class:`Endpoint` by name, each served at ``POST /api/NAME``: the fields a
request's JSON object may hold (:class:`Field`: a type, whether it is
required, a bound) and a function of the checked values that returns the
reply, a JSON object, or for a ``stream`` endpoint an iterator of JSON
objects sent one a line as they come (``application/x-ndjson``, chunked).
The server (:mod:`rnnkit.cli.serve`) holds no branch on a task: it checks a
request against its endpoint's fields (:func:`check_request`) and calls it.

A request carries data, never a path: no field names a file to read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rnnkit.errors import RnnkitError

_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list[str]": list, "list": list, "base64": str}


class RequestError(RnnkitError):
    """A request the server refuses, with its HTTP status (400: malformed; 413: too large;
    422: well formed but the run cannot take it, such as a character unseen in training)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask of the server (``rnnkit serve`` flags)."""

    max_length: int = 1000  # tokens generated or decoded, a request
    max_text: int = 20_000  # characters of a text given, each
    max_items: int = 64  # texts in a request's list


@dataclass(frozen=True)
class Field:
    """One field of a request: ``kind`` one of "str", "int", "float", "bool", "list[str]", "list" (its
    items checked by the endpoint), "base64" (a file's bytes, a string; the page offers a file to pick);
    ``low``/``high`` bound a number, ``high`` the length of a text or the items of a list."""

    kind: str
    help: str
    default: object = None
    required: bool = False
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Endpoint:
    """``handle(values) -> reply``; ``stream``: the reply is an iterator of JSON objects."""

    summary: str
    fields: dict[str, Field]
    handle: Callable[[dict], dict | Iterator[dict]]
    stream: bool = False
    limits: Limits = field(default_factory=Limits)

    def describe(self) -> dict:
        """The endpoint as ``GET /api`` lists it."""
        return {"summary": self.summary, "stream": self.stream,
                "fields": {name: {"type": f.kind, "required": f.required, "default": f.default, "help": f.help,
                                  **({"min": f.low} if f.low is not None else {}),
                                  **({"max": f.high} if f.high is not None else {})}
                           for name, f in self.fields.items()}}


def check_request(endpoint: Endpoint, body) -> dict:
    """The values of a request's JSON ``body`` for ``endpoint``, each field checked and the absent
    ones at their defaults; a :class:`RequestError` (400) names the first wrong field."""
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(endpoint.fields))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}; this endpoint takes {', '.join(endpoint.fields)}")
    values = {}
    for name, f in endpoint.fields.items():
        if name not in body or body[name] is None:
            if f.required:
                raise RequestError(f"{name!r} is required ({f.help})")
            values[name] = f.default
            continue
        values[name] = _checked(name, f, body[name])
    return values


def _checked(name: str, f: Field, value):
    expected = _TYPES[f.kind]
    if not isinstance(value, expected) or (isinstance(value, bool) and f.kind != "bool"):
        raise RequestError(f"{name!r} must be {f.kind}, got {type(value).__name__}")
    if f.kind == "list[str]" and not all(isinstance(v, str) for v in value):
        raise RequestError(f"{name!r} must be a list of strings")
    if f.kind in ("str", "base64", "list[str]", "list"):
        if f.high is not None and len(value) > f.high:
            what = "items" if f.kind.startswith("list") else "characters"
            raise RequestError(f"{name!r} holds {len(value):,} {what}; the limit is {int(f.high):,}", 413)
        if f.low is not None and len(value) < f.low:
            raise RequestError(f"{name!r} must hold at least {int(f.low)}")
        return value
    if f.low is not None and value < f.low or f.high is not None and value > f.high:
        bounds = f"between {f.low:g} and {f.high:g}" if f.high is not None else f">= {f.low:g}"
        raise RequestError(f"{name!r} must be {bounds}, got {value!r}")
    return float(value) if f.kind == "float" else value


def texts_field(limits: Limits, what: str) -> Field:
    """A required list of texts within the limits: the input of a labelling endpoint."""
    return Field("list[str]", what, required=True, low=1, high=limits.max_items)


def check_texts(texts: list[str], limits: Limits, name: str = "texts") -> None:
    """A 413 for a text over ``limits.max_text`` characters, a 400 for an empty one."""
    for n, text in enumerate(texts):
        if len(text) > limits.max_text:
            raise RequestError(f"{name}[{n}] holds {len(text):,} characters; the limit is {limits.max_text:,}", 413)
        if not text.strip():
            raise RequestError(f"{name}[{n}] is empty")
