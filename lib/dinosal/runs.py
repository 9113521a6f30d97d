"""A run cache keyed by configuration, with manifests and atomic writes.

A chapter asks for an artifact (a trained model, an evaluation table) by
``cached(kind, config, build_fn)``. The key is a hash of the config dataclass
(its field values, recursively), ``kind`` and the library version; the
artifact lives in ``<root>/<kind>/<key>/`` and is built at most once:

* ``build_fn(tmp_dir)`` writes files into a fresh temporary directory beside
  the final one; on success a ``manifest.json`` is written there (config,
  versions of python/torch/timm/dinosal, timings, machine) and the directory is
  renamed into place with one ``os.replace``, so a half-built artifact is never
  seen under its key.
* A lock file (``<key>.lock``, ``fcntl.flock``) serialises builders of the
  same key across processes; a second caller waits, then finds the finished
  directory.

Root: ``$DINOSAL_CACHE`` if set; else ``<repo root>/.cache/dinosal`` when the
package lives in a checkout (``lib/dinosal`` under a directory with ``.git``
or ``pyproject.toml``); else ``~/.cache/dinosal``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

__all__ = [
    "CACHE_ENV",
    "cache_root",
    "config_dict",
    "config_key",
    "versions",
    "machine",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_torch_save",
    "file_lock",
    "cached",
    "read_manifest",
]

CACHE_ENV = "DINOSAL_CACHE"


def _repo_root() -> Optional[Path]:
    pkg = Path(__file__).resolve().parent
    if pkg.parent.name == "lib":
        root = pkg.parent.parent
        if (root / ".git").exists() or (root / "pyproject.toml").exists():
            return root
    return None


def cache_root() -> Path:
    """The cache directory (see module doc); not created here."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    root = _repo_root()
    if root is not None:
        return root / ".cache" / "dinosal"
    return Path.home() / ".cache" / "dinosal"


def _plain(value: Any) -> Any:
    """JSON-able form of a config value (dataclasses, tuples, paths, numpy)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__type__": type(value).__name__}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.metadata.get("key_omit_default") and v == f.default:
                continue  # a field added later: runs that leave it at its default keep their keys
            out[f.name] = _plain(v)
        return out
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"config value {value!r} of type {type(value).__name__} cannot be hashed into a cache key")


def config_dict(config: Any) -> dict:
    """The config as a JSON-able dict (dataclass type names included)."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise TypeError(f"runs: config must be a dataclass instance, got {type(config).__name__}")
    return _plain(config)


def config_key(kind: str, config: Any, version: Optional[str] = None) -> str:
    """16 hex digits: sha256 of (kind, library version, config dict)."""
    if version is None:
        from . import __version__ as version
    blob = json.dumps({"kind": kind, "version": version, "config": config_dict(config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    """Versions of python, numpy, torch, torchvision, timm and dinosal."""
    from . import __version__

    out = {"python": platform.python_version(), "dinosal": __version__}
    for mod in ("numpy", "torch", "torchvision", "timm"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional
            out[mod] = "missing"
    return out


def machine() -> dict[str, Any]:
    """A short description of the machine (no host name)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    try:
        info["load_avg"] = os.getloadavg()
    except OSError:
        pass
    return info


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same
    directory and ``os.replace`` (readers see the old or the new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path) -> Path:
    """``torch.save`` to a temporary file, then ``os.replace`` onto ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def file_lock(path) -> Iterator[None]:
    """An exclusive ``fcntl.flock`` on ``path`` (created if needed); a no-op
    lock where ``fcntl`` does not exist."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


MANIFEST = "manifest.json"


def read_manifest(path) -> dict:
    """The manifest of a cached artifact directory."""
    with open(Path(path) / MANIFEST) as fh:
        return json.load(fh)


def cached(
    kind: str,
    config: Any,
    build_fn: Callable[[Path], Optional[dict]],
    root: Optional[Path] = None,
    rebuild: bool = False,
) -> Path:
    """Directory of the artifact ``(kind, config)``, built once by ``build_fn``.

    ``build_fn(tmp_dir)`` writes the artifact's files into ``tmp_dir`` and may
    return a dict of extra manifest entries (e.g. measured numbers). Returns
    ``<root>/<kind>/<key>``, which holds the files and ``manifest.json``.
    ``rebuild=True`` replaces an existing artifact.
    """
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"runs.cached: bad kind {kind!r} (a plain directory name is needed)")
    key = config_key(kind, config)
    base = Path(root) if root is not None else cache_root()
    final = base / kind / key
    if not rebuild and (final / MANIFEST).is_file():
        return final
    with file_lock(base / kind / f"{key}.lock"):
        if not rebuild and (final / MANIFEST).is_file():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=base / kind))
        try:
            started = time.time()
            extra = build_fn(tmp) or {}
            finished = time.time()
            manifest = {
                "kind": kind,
                "key": key,
                "config": config_dict(config),
                "versions": versions(),
                "machine": machine(),
                "timings": {
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                    "build_seconds": round(finished - started, 3),
                },
            }
            manifest.update(extra)
            atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
