"""How a chapter parameter is declared: :func:`param`, :func:`require`, :class:`ParameterError`.

The bottom of the library: it imports nothing from :mod:`dinosal`, so the
profile tables (:mod:`dinosal.profiles`, which declare their fields with
these) and the resolver (:mod:`dinosal.config`, which checks values against
them) both stand on it without importing each other in a circle.

A chapter's parameters are a frozen dataclass whose fields are declared with
:func:`param`: the annotation is the field's type, the metadata holds its help
text and the values it accepts (``min``/``max`` inclusive and ``gt``/``lt``
exclusive bounds of a number or of every number in a list or tuple;
``choices`` for strings, a sequence or a function of the profile name).
Checks between fields live in the dataclass's ``__post_init__`` and raise
through :func:`require`. :mod:`dinosal.config` describes how values are parsed
and checked.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence, Union

__all__ = ["ParameterError", "Choices", "param", "require"]

Choices = Union[Sequence[str], Callable[[str], Sequence[str]]]


class ParameterError(ValueError):
    """An unknown profile or parameter name, or a value of the wrong type or out of range."""


def param(default: Any, help: str, *, min: Optional[float] = None, max: Optional[float] = None,
          gt: Optional[float] = None, lt: Optional[float] = None, choices: Optional[Choices] = None):
    """A chapter parameter: a dataclass field with help text and the values it accepts.

    min/max: inclusive bounds, gt/lt: exclusive bounds of a number (or of
    every number in a list/tuple). choices: the accepted strings (or every
    string of a list), or a function ``profile -> accepted strings``. The
    type comes from the field's annotation. Kept in the field's metadata
    (``help``, ``min``, ``max``, ``gt``, ``lt``, ``choices``).
    """
    meta = {"help": help, "min": min, "max": max, "gt": gt, "lt": lt, "choices": choices}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def require(ok: bool, name: str, value: Any, accepted: str) -> None:
    """For checks between fields in a chapter dataclass's ``__post_init__``:
    raise :class:`ParameterError` naming ``name``, its ``value`` and what is
    ``accepted`` unless ``ok``."""
    if not ok:
        raise ParameterError(f"parameter {name!r} = {value!r} is not accepted; accepted: {accepted}")
