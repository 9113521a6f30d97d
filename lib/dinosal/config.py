"""Chapter parameters and named profiles, in one place.

Every chapter notebook has one cell tagged ``parameters`` that assigns
``profile`` and a few overridable knobs (``None`` means "take the profile's
value"). The next cell calls :func:`chapter_params`, which

1. picks the profile (``smoke``, ``cpu`` = default, ``paper``);
2. applies the profile's values from the chapter's table (:mod:`dinosal.profiles`);
3. applies every non-``None`` override the notebook (or papermill) set;
4. checks every value against its field's declared type and range (see
   below) and the chapter's checks between fields;
5. rejects unknown profiles, unknown parameter names and bad values at once,
   naming the parameter and listing the accepted values.

Profiles::

    smoke  seconds per chapter; the code path the tests run under nbval
    cpu    the default study on the procedural benchmark, minutes on 2 cores
    paper  the seed paper's setting (ViT-S/8, official DINO weights, BDD100K,
           and Stanford Cars for the transfer chapter); needs a GPU and the
           datasets on disk

The environment variable ``DINOSAL_PROFILE`` replaces the profile a notebook
asks for; ``make test`` uses it to run every chapter in ``smoke`` without
editing the notebooks. Both must name a profile: a notebook's ``profile =
"nosuch"`` fails even when the variable is set.

Chapter parameter classes are plain frozen dataclasses; they and their
per-profile tables are plain data in :mod:`dinosal.profiles`
(:data:`~dinosal.profiles.CHAPTERS`), which this module imports and checks
when it is imported. Their fields are declared with :func:`param` (help
text, range, choices) from :mod:`dinosal.params`, the bottom of the library;
:func:`register_chapter` adds (and checks) a chapter that is not in the
tables, as tests do.

Types and papermill's string forms
----------------------------------
The field's annotation is the declared type: ``int``, ``float``, ``str``,
``bool``, ``list[X]`` / ``tuple[X, ...]`` / ``tuple[X, Y, Z]`` (or bare
``list`` / ``tuple``), ``Optional[...]`` and ``Union[...]`` of those.
``papermill -p`` turns ``True``/``False``/``None`` and numbers into Python
values and leaves everything else a string, so a value is parsed where the
type says so:

* ``int``: ``"128"`` -> 128 (an integral float too); ``float``: ``"1e-3"``
  and ints; ``bool``: ``true/false/yes/no/on/off/1/0``; ``str``: an int is
  taken as its digits (``-p data_folder 2024``).
* list or tuple: ``"(64, 2, 2)"``, ``"[a, b]"`` and ``"64,2,2"`` through
  :func:`ast.literal_eval` where they parse, else split at commas
  (``"a, b"`` -> ``["a", "b"]``); a bare name is a one-element list
  (``-p models dino_world`` -> ``["dino_world"]``). Items are then parsed as
  the item type.

Ranges and choices (:func:`param`) hold for the value, or for every item of
a list or tuple: ``min``/``max`` (inclusive) and ``gt``/``lt`` (exclusive)
for numbers, ``choices`` for strings (a sequence, or a function of the
profile name for names that depend on the profile, such as the zoo's
models). Checks between fields (an image size that must be a multiple of the
patch) live in the dataclass's ``__post_init__`` and raise through
:func:`require`. The profile tables are checked the same way when this
module is imported, so a table value out of range fails at import.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import types
import typing
from typing import Any, Mapping, Optional, Union

from . import profiles
from .params import Choices, ParameterError, param, require

__all__ = ["PROFILES", "DEFAULT_PROFILE", "PROFILE_ENV", "Choices", "ParameterError", "param", "require", "profile_params",
           "register_chapter", "chapters", "valid_parameters", "parameter_help", "resolve", "chapter_params"]

PROFILES: tuple[str, ...] = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"
PROFILE_ENV = "DINOSAL_PROFILE"

# chapter name -> (dataclass type, {profile: {field: value}})
_REGISTRY: dict[str, tuple[type, dict[str, dict[str, Any]]]] = {}

# Names that IPython puts into a notebook's namespace; never parameters.
_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
_PLAIN = (str, int, float, bool, type(None), list, tuple, dict)
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def register_chapter(name: str, cls: type, table: Mapping[str, Mapping[str, Any]]) -> None:
    """Register a chapter's parameter dataclass and its per-profile values.

    ``table`` must name every profile in :data:`PROFILES`; each entry may only
    use field names of ``cls``, and every profile must resolve: each value
    (a table's or a field's default) of its declared type and in its range,
    and the dataclass's own checks passed. Checked here so that a typo or a
    value out of range fails at import time (every table of
    :data:`dinosal.profiles.CHAPTERS` passes through here when this module
    is imported).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name for f in dataclasses.fields(cls)}
    if "profile" not in fields:
        raise TypeError(f"{cls.__name__} needs a 'profile' field")
    missing = set(PROFILES) - set(table)
    if missing:
        raise ValueError(f"chapter {name!r} lacks profiles {sorted(missing)}")
    for prof, values in table.items():
        unknown = set(values) - fields
        if unknown:
            raise ValueError(
                f"chapter {name!r}, profile {prof!r}: unknown fields {sorted(unknown)}; "
                f"valid: {sorted(fields)}"
            )
    entry = (cls, {p: dict(v) for p, v in table.items()})
    for prof in PROFILES:
        _build(name, entry, prof, {})
    _REGISTRY[name] = entry


def chapters() -> list[str]:
    """Names of the registered chapters."""
    return sorted(_REGISTRY)


def valid_parameters(chapter: str) -> list[str]:
    """The parameter names a chapter accepts (its dataclass fields)."""
    cls, _ = _lookup(chapter)
    return [f.name for f in dataclasses.fields(cls)]


def parameter_help(chapter: str, profile: str = DEFAULT_PROFILE) -> dict[str, str]:
    """Parameter name -> its help text and accepted values in ``profile``."""
    cls, _ = _lookup(chapter)
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name == "profile":
            out[f.name] = f"the sizes of the chapter; accepted: {', '.join(PROFILES)}"
        else:
            help_ = f.metadata.get("help", "")
            out[f.name] = f"{help_}; accepted: {_accepted(hints[f.name], f.metadata, profile)}".lstrip("; ")
    return out


def resolve(chapter: str, profile: str | None = None, **overrides: Any):
    """Build the chapter's parameters for ``profile`` with ``overrides`` applied.

    ``None`` overrides are ignored (they mean "profile default"). The profile
    is ``$DINOSAL_PROFILE`` when set, else ``profile``, else ``cpu``; both
    must be valid profile names. Raises :class:`ParameterError` naming the
    valid profiles or parameters, or the parameter whose value is not of its
    type or out of its range together with the accepted values.
    """
    entry = _lookup(chapter)
    if profile is not None:  # checked even when the environment variable replaces it
        _check_profile(profile, f"(parameter 'profile') for chapter {chapter!r}")
    env = os.environ.get(PROFILE_ENV)
    if env is not None:
        _check_profile(env, f"in the environment variable {PROFILE_ENV}")
    profile = env or profile or DEFAULT_PROFILE
    valid = valid_parameters(chapter)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for chapter "
            f"{chapter!r}; valid parameters: {', '.join(valid)}"
        )
    return _build(chapter, entry, profile, {k: v for k, v in overrides.items() if v is not None})


def profile_params(chapter: str, profile: str):
    """The chapter's parameters exactly as ``profile``'s table gives them,
    whatever ``$DINOSAL_PROFILE`` says: for the library, which must know what
    a profile's chapters train (e.g. :func:`dinosal.zoo.catalogue`) while the
    tests run in another profile. Raises :class:`ParameterError` for an
    unknown chapter or profile."""
    entry = _lookup(chapter)
    _check_profile(profile, f"for chapter {chapter!r}")
    return _build(chapter, entry, profile, {})


def chapter_params(chapter: str, namespace: Mapping[str, Any]):
    """Resolve parameters from a notebook namespace (pass ``globals()``).

    Every plain-valued global that does not start with ``_`` counts as a
    parameter: the ones the ``parameters`` cell set and the ones papermill
    injected. Call it before importing anything else into the namespace
    (modules, functions and classes are skipped anyway).
    """
    given = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _PLAIN)
    }
    profile = given.pop("profile", None)
    return resolve(chapter, profile, **given)


def _check_profile(value: Any, where: str) -> None:
    if not isinstance(value, str) or value not in PROFILES:
        raise ParameterError(f"unknown profile {value!r} {where}; valid profiles: {', '.join(PROFILES)}")


def _build(chapter: str, entry, profile: str, overrides: Mapping[str, Any]):
    """The dataclass of ``profile``: table values, then overrides, each parsed and checked."""
    cls, table = entry
    hints = typing.get_type_hints(cls)
    values = dict(table[profile])
    values.update(overrides)
    where = f"chapter {chapter!r}, profile {profile!r}"
    out = {"profile": profile}
    for f in dataclasses.fields(cls):
        if f.name == "profile":
            continue
        if f.name in values:
            value = values[f.name]
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            raise ParameterError(f"{where}: parameter {f.name!r} has no value; set it in the table or pass it")
        out[f.name] = _validate(f, hints[f.name], value, profile, where)
    try:
        return cls(**out)
    except ParameterError as err:  # the dataclass's checks between fields
        raise ParameterError(f"{where}: {err}") from None


class _Mismatch(Exception):
    """A value that is not of the declared type (internal; becomes a ParameterError)."""


def _validate(f: dataclasses.Field, tp, value: Any, profile: str, where: str) -> Any:
    meta = f.metadata
    help_ = f" ({meta['help']})" if meta.get("help") else ""
    accepted = _accepted(tp, meta, profile)
    try:
        parsed = _coerce(value, tp)
    except _Mismatch:
        raise ParameterError(
            f"{where}: parameter {f.name!r} = {value!r} is not {_type_name(tp)}{help_}; accepted: {accepted}"
        ) from None
    problem = _out_of_range(parsed, meta, profile)
    if problem:
        raise ParameterError(f"{where}: parameter {f.name!r} = {value!r}{problem}{help_}; accepted: {accepted}")
    return parsed


def _members(tp) -> tuple:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(tp)
    return (tp,)


def _coerce(value: Any, tp) -> Any:
    """``value`` as type ``tp`` (parsing papermill's string forms); raises _Mismatch."""
    members = _members(tp)
    if len(members) > 1:
        if type(None) in members and (value is None or value == "None" and str not in members):
            return None  # "None" as papermill -r or a YAML string gives it
        # a string is tried as the other types first: "(64, 2, 2)" is a tuple, "small" a name
        order = sorted(members, key=lambda m: m is str) if isinstance(value, str) else members
        for m in order:
            if m is type(None):
                continue
            try:
                return _coerce(value, m)
            except _Mismatch:
                pass
        raise _Mismatch
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    origin = typing.get_origin(tp) or tp
    if origin in (list, tuple):
        return _coerce_sequence(value, tp, origin)
    if tp is bool:
        return _coerce_bool(value)
    if tp is int:
        return _coerce_int(value)
    if tp is float:
        return _coerce_float(value)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # papermill turns "-p folder 2024" into an int
        raise _Mismatch
    if origin is dict:
        if isinstance(value, str):
            value = _literal(value)
        if isinstance(value, dict):
            return value
        raise _Mismatch
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch


def _coerce_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Mismatch


def _coerce_int(value):
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
        try:
            as_float = float(value.strip())
        except ValueError:
            raise _Mismatch from None
        if as_float.is_integer():
            return int(as_float)
    raise _Mismatch


def _coerce_float(value):
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise _Mismatch from None
    else:
        raise _Mismatch
    if not math.isfinite(out):
        raise _Mismatch
    return out


def _literal(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _coerce_sequence(value, tp, origin):
    if isinstance(value, str):
        text = value.strip()
        parsed = _literal(text)
        if isinstance(parsed, (list, tuple)):
            value = parsed
        else:
            if text[:1] + text[-1:] in ("()", "[]"):
                text = text[1:-1]  # bare names in brackets: "[random, dino_world]"
            if any(c in text for c in "()[]{}"):
                raise _Mismatch  # unbalanced or nested brackets, a dict or set
            value = [part.strip() for part in text.split(",") if part.strip()]
    elif isinstance(value, (int, float)):
        value = [value]  # papermill's "-p sizes 64": one item
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    args = typing.get_args(tp)
    if not args:
        items = list(value)
    elif origin is list or (len(args) == 2 and args[1] is Ellipsis):
        items = [_coerce(v, args[0]) for v in value]
    else:  # fixed-length tuple
        if len(value) != len(args):
            raise _Mismatch
        items = [_coerce(v, a) for v, a in zip(value, args)]
    return origin(items)


def _out_of_range(value: Any, meta: Mapping[str, Any], profile: str) -> str:
    """What is wrong with a parsed value given the field's range and choices ("" if nothing), worded to
    follow the value: " is out of range (must be >= 1)", ": item 0 = 'd' is not one of a, b"."""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _out_of_range(item, meta, profile)
            if problem:
                return f": item {i} = {item!r}{problem}"
        return ""
    if isinstance(value, str):
        choices = _choices(meta, profile)
        if choices is not None and value not in choices:
            return f" is not one of {', '.join(choices)}"
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, ok, text in (("min", lambda v, b: v >= b, ">="), ("max", lambda v, b: v <= b, "<="),
                              ("gt", lambda v, b: v > b, ">"), ("lt", lambda v, b: v < b, "<")):
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                return f" is out of range (must be {text} {bound})"
    return ""


def _choices(meta: Mapping[str, Any], profile: str) -> Optional[tuple[str, ...]]:
    choices = meta.get("choices")
    if choices is None:
        return None
    return tuple(choices(profile) if callable(choices) else choices)


def _type_name(tp) -> str:
    members = _members(tp)
    if len(members) > 1:
        return " or ".join(_type_name(m) for m in sorted(members, key=lambda m: m is not type(None)))
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if origin in (list, tuple):
        kind = origin.__name__
        if not args:
            return f"a {kind}"
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            return f"a {kind} of {_type_name(args[0]).removeprefix('an ').removeprefix('a ')}"
        return "(" + ", ".join(_type_name(a).removeprefix("an ").removeprefix("a ") for a in args) + ")"
    name = getattr(tp, "__name__", str(tp))
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _bounds_text(meta: Mapping[str, Any]) -> str:
    lo = ("[", meta["min"]) if meta.get("min") is not None else ("(", meta["gt"]) if meta.get("gt") is not None \
        else None
    hi = ("]", meta["max"]) if meta.get("max") is not None else (")", meta["lt"]) if meta.get("lt") is not None \
        else None
    if lo and hi:
        return f"in {lo[0]}{lo[1]}, {hi[1]}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {lo[1]}"
    if hi:
        return f"{'<=' if hi[0] == ']' else '<'} {hi[1]}"
    return ""


def _accepted(tp, meta: Mapping[str, Any], profile: str) -> str:
    """The accepted values of a field in words, e.g. ``an int >= 1`` or ``None or a list of str, each one
    of dino_world, dino_driving``."""
    parts = []
    for m in sorted(_members(tp), key=lambda m: m is not type(None)):  # "None or ..."
        name = _type_name(m)
        origin = typing.get_origin(m) or m
        scalars = typing.get_args(m) if origin in (list, tuple) else (m,)
        each = ", each " if origin in (list, tuple) else " "
        if m is str and _choices(meta, profile) is not None:
            name = f"one of {', '.join(_choices(meta, profile))}"
        elif str in scalars and _choices(meta, profile) is not None:
            name += f"{each}one of {', '.join(_choices(meta, profile))}"
        elif any(s in (int, float) for s in scalars) and _bounds_text(meta):
            name += f"{each}{_bounds_text(meta)}"
        parts.append(name)
    return " or ".join(parts)


def _lookup(chapter: str):
    try:
        return _REGISTRY[chapter]
    except KeyError:
        raise ParameterError(
            f"unknown chapter {chapter!r}; registered chapters: {', '.join(sorted(_REGISTRY))}"
        ) from None


def _register_tables() -> None:
    """Check and register every chapter of :data:`dinosal.profiles.CHAPTERS` (at import)."""
    for name, (cls, table) in profiles.CHAPTERS.items():
        register_chapter(name, cls, table)


_register_tables()
