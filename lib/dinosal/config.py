"""Chapter parameters and named profiles, in one place.

Every chapter notebook has one cell tagged ``parameters`` that assigns
``profile`` and a few overridable knobs (``None`` means "take the profile's
value"). The next cell calls :func:`chapter_params`, which

1. picks the profile (``smoke``, ``cpu`` = default, ``paper``);
2. applies the profile's values from the chapter's table registered here;
3. applies every non-``None`` override the notebook (or papermill) set;
4. rejects unknown profiles and unknown parameter names at once, listing the
   valid ones.

Profiles::

    smoke  seconds per chapter; the code path the tests run under nbval
    cpu    the default study on the procedural benchmark, minutes on 2 cores
    paper  the seed paper's setting (ViT-S/8, official DINO weights, BDD100K,
           Stanford Cars); needs a GPU and the datasets on disk

The environment variable ``DINOSAL_PROFILE`` replaces the profile a notebook
asks for; ``make test`` uses it to run every chapter in ``smoke`` without
editing the notebooks.

Chapter parameter classes are plain frozen dataclasses registered with
:func:`register_chapter`; the tables themselves live in :mod:`dinosal.profiles`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

PROFILES: tuple[str, ...] = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"
PROFILE_ENV = "DINOSAL_PROFILE"

# chapter name -> (dataclass type, {profile: {field: value}})
_REGISTRY: dict[str, tuple[type, dict[str, dict[str, Any]]]] = {}

# Names that IPython puts into a notebook's namespace; never parameters.
_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
_PLAIN = (str, int, float, bool, type(None), list, tuple, dict)


class ParameterError(ValueError):
    """An unknown profile or parameter name, or a value of the wrong kind."""


def register_chapter(name: str, cls: type, table: Mapping[str, Mapping[str, Any]]) -> None:
    """Register a chapter's parameter dataclass and its per-profile values.

    ``table`` must name every profile in :data:`PROFILES`; each entry may only
    use field names of ``cls``. Checked here so a typo fails at import time.
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
    _REGISTRY[name] = (cls, {p: dict(v) for p, v in table.items()})


def chapters() -> list[str]:
    """Names of the registered chapters."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def valid_parameters(chapter: str) -> list[str]:
    """The parameter names a chapter accepts (its dataclass fields)."""
    cls, _ = _lookup(chapter)
    return [f.name for f in dataclasses.fields(cls)]


def resolve(chapter: str, profile: str | None = None, **overrides: Any):
    """Build the chapter's parameters for ``profile`` with ``overrides`` applied.

    ``None`` overrides are ignored (they mean "profile default"). Raises
    :class:`ParameterError` naming the valid profiles or parameters.
    """
    cls, table = _lookup(chapter)
    env = os.environ.get(PROFILE_ENV)
    profile = env or profile or DEFAULT_PROFILE
    if profile not in PROFILES:
        raise ParameterError(
            f"unknown profile {profile!r} for chapter {chapter!r}; valid profiles: "
            f"{', '.join(PROFILES)}"
        )
    valid = valid_parameters(chapter)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for chapter "
            f"{chapter!r}; valid parameters: {', '.join(valid)}"
        )
    values = dict(table[profile])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["profile"] = profile
    try:
        return cls(**values)
    except TypeError as err:  # a required field without a value
        raise ParameterError(f"chapter {chapter!r}, profile {profile!r}: {err}") from None


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


def _lookup(chapter: str):
    _ensure_loaded()
    try:
        return _REGISTRY[chapter]
    except KeyError:
        raise ParameterError(
            f"unknown chapter {chapter!r}; registered chapters: {', '.join(sorted(_REGISTRY))}"
        ) from None


def _ensure_loaded() -> None:
    # The tables register themselves on import.
    from . import profiles  # noqa: F401
