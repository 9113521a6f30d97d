"""What the chapters' computed text and listings are made of: comparison words with a tolerance
(:func:`compare_word`, :func:`interval_word`), parameters wrapped to the page (:func:`wrapped_repr`) and
the library's own source shown in a chapter (:func:`source_of`, :func:`show_source`).

Floor 1 (no plotting); :mod:`dinosal.viz` re-exports every name, which is how the chapters call them.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import pprint
import textwrap
from typing import Optional, Sequence

import numpy as np

__all__ = ["PAGE_CHARS", "OUTPUT_CHARS", "Wrapped", "wrapped_repr", "compare_word", "interval_word", "signed", "source_of", "show_source"]


PAGE_CHARS = 86
"""Characters of code or plain-text output that fit the book's page width (about 770 px) without scrolling."""

OUTPUT_CHARS = 76
"""Characters of plain-text *output* that fit without scrolling: an output block is narrower than a code cell
(in a headless build, parameter lines of 80 characters overflowed by 18 px, of 86 by 69 px), with a margin."""


class Wrapped:
    """Plain text that a notebook shows as it is (no quotes): the result of :func:`wrapped_repr`."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


def wrapped_repr(obj, width: int = OUTPUT_CHARS) -> Wrapped:
    """``repr(obj)`` broken into lines of at most ``width`` characters where possible.

    A dataclass (a chapter's parameters) is written ``Name(field=value, ...)``
    with whole fields packed onto each line under the opening parenthesis, so
    that no field is split; a field longer than a line gets lines of its own,
    its value (a list, a dict) broken between its items by :func:`pprint.pformat`.
    Anything else is its ``repr``, unchanged.
    """
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        return Wrapped(repr(obj))
    head = type(obj).__name__ + "("
    pad = " " * len(head)
    fields = [f for f in dataclasses.fields(obj) if f.repr]
    lines, line = [], head
    for i, f in enumerate(fields):
        end = "," if i < len(fields) - 1 else ")"
        piece = f"{f.name}={getattr(obj, f.name)!r}{end}"
        if len(pad) + len(piece) > width:  # too long for any line: its own lines, broken between items
            if line != head:
                lines.append(line)
            body = pprint.pformat(getattr(obj, f.name), width=max(20, width - len(pad) - len(f.name) - 1), compact=True)
            inner = " " * (len(f.name) + 1)
            text = (f"{f.name}=" + body.replace("\n", "\n" + pad + inner) + end).split("\n")
            text[0] = (head if line == head else pad) + text[0]
            lines += text[:-1]
            line = text[-1] if len(text) > 1 else text[0]
            if len(text) == 1:
                lines.append(line)
                line = pad
            continue
        if line.strip() and line not in (head, pad) and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = pad + piece
        else:
            line = line + ("" if line in (head, pad) else " ") + piece
    if not fields:
        line += ")"
    if line.strip():
        lines.append(line)
    return Wrapped("\n".join(lines))


# ---------------------------------------------------------------- words in computed prose


def compare_word(a: float, b: float, tol: float,
                 words: Sequence[str] = ("more than", "about the same as", "less than"),
                 missing: Optional[str] = None) -> str:
    """The word that compares ``a`` with ``b`` in computed prose, with a tolerance.

    ``words[0]`` when ``a > b + tol``, ``words[2]`` when ``a < b - tol``,
    ``words[1]`` otherwise (the difference is within ``tol``, ends included).
    Pass ``words`` to fit the sentence, e.g. ``("faster than", "as fast as",
    "slower than")``. A NaN on either side returns ``missing`` when it is
    given and raises otherwise: a sentence must not compare a number that was
    not measured.
    """
    a, b, tol = float(a), float(b), float(tol)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be finite and >= 0, got {tol}")
    if not (np.isfinite(a) and np.isfinite(b)):
        if missing is not None:
            return missing
        raise ValueError(f"compare_word needs finite numbers, got {a} and {b}")
    if len(words) != 3:
        raise ValueError(f"words holds (above, within, below), got {words!r}")
    d = a - b
    return words[0] if d > tol else words[2] if d < -tol else words[1]


def interval_word(low: float, high: float, margin: float,
                  words: Sequence[str] = ("higher", "within the margin", "lower", "not distinguishable from no change"),
                  missing: Optional[str] = None) -> str:
    """The word for an effect's confidence interval ``[low, high]`` against a margin of no meaningful change.

    ``words[1]`` when the whole interval lies inside ``[-margin, +margin]``, ``words[0]`` when it lies
    above 0, ``words[2]`` when it lies below 0, ``words[3]`` otherwise (it holds 0 but reaches past the
    margin). A NaN bound returns ``missing`` when it is given and raises ``ValueError`` otherwise.
    """
    low, high, margin = float(low), float(high), float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be finite and >= 0, got {margin}")
    if len(words) != 4:
        raise ValueError(f"words holds (above, within, below, unclear), got {words!r}")
    if not (np.isfinite(low) and np.isfinite(high)):
        if missing is not None:
            return missing
        raise ValueError(f"interval_word needs finite bounds, got {low} and {high}")
    if low > high:
        raise ValueError(f"low must not exceed high, got [{low}, {high}]")
    if -margin <= low and high <= margin:
        return words[1]
    return words[0] if low > 0 else words[2] if high < 0 else words[3]



def signed(x: float, digits: int = 2) -> str:
    """``x`` with an explicit sign at ``digits`` decimals, except that a value which rounds to zero reads
    ``0.00`` (never ``-0.00``)."""
    x = float(x)
    if np.isfinite(x) and round(x, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{x:+.{digits}f}"




# ---------------------------------------------------------------- the library's code on the page


def _fields_only(src: str) -> str:
    """A class's source up to its first method (docstring, fields and class attributes)."""
    body = ast.parse(src).body[0]
    first = next((n for n in body.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if first is None:
        return src
    start = min([first.lineno] + [d.lineno for d in first.decorator_list])
    return "\n".join(src.splitlines()[: start - 1]).rstrip() + "\n"


def _private_helpers(fn) -> list:
    """The module-level private functions of ``fn``'s own module that ``fn`` calls, in order of first use."""
    module = inspect.getmodule(fn)
    if module is None:
        return []
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    names = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)),
                   key=lambda n: (n.lineno, n.col_offset))
    out = []
    for n in names:
        obj = vars(module).get(n.id)
        if (n.id.startswith("_") and not n.id.startswith("__") and inspect.isfunction(obj)
                and obj.__module__ == module.__name__ and obj not in out):
            out.append(obj)
    return out


def source_of(*objs, fields_only: bool = False, bases: bool = False, helpers: bool = False) -> str:
    """The dedented source of functions, methods or classes, joined by a blank line.

    fields_only: for a class, stop before its first method (a config
    dataclass's docstring and fields). bases: for a class, first the
    classes it inherits from that are defined in ``dinosal`` (the base-most
    first), so inherited fields are shown. helpers: after each function,
    the private functions of its module that it calls (one level), each
    shown once.
    """
    seen, parts = [], []

    def add(obj):
        if any(obj is o for o in seen):
            return
        seen.append(obj)
        src = textwrap.dedent(inspect.getsource(obj))
        parts.append(_fields_only(src) if fields_only and inspect.isclass(obj) else src.rstrip() + "\n")

    for obj in objs:
        if bases and inspect.isclass(obj):
            for base in reversed(obj.__mro__[1:]):
                if base.__module__.split(".")[0] == "dinosal":
                    add(base)
        add(obj)
        if helpers and not inspect.isclass(obj):
            for helper in _private_helpers(obj):
                add(helper)
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def show_source(*objs, fields_only: bool = False, bases: bool = False, helpers: bool = False) -> None:
    """Display :func:`source_of` as a highlighted Python listing in a notebook."""
    from IPython.display import Code, display

    display(Code(source_of(*objs, fields_only=fields_only, bases=bases, helpers=helpers), language="python"))
