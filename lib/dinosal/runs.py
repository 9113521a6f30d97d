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

Root: ``$DINOSAL_CACHE`` if set; else the platform's user cache folder,
``$XDG_CACHE_HOME/dinosal`` (``~/.cache/dinosal`` when ``XDG_CACHE_HOME`` is
unset or empty). The cache lives outside the work tree, so one cache serves
every checkout of the project and ``git clean`` never throws away trainings;
the trained models a profile needs are also released in the repository (see
:mod:`dinosal.release`), from where they are materialised into this cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
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
    "KEY_VERSION_ATTR",
    "files_fingerprint",
    "versions",
    "machine",
    "AtomicWriteError",
    "write_failed",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_torch_save",
    "file_lock",
    "cached",
    "read_manifest",
]

CACHE_ENV = "DINOSAL_CACHE"

KEY_VERSION_ATTR = "KEY_VERSION"
"""Name of a class attribute (a ``ClassVar``) that a config dataclass sets when
what it produces depends on code outside its fields, e.g. the drawing code of a
procedural generator. Its value enters every key that holds such a config, so
bumping it retires every artifact built from the old code."""


def _repo_root() -> Optional[Path]:
    pkg = Path(__file__).resolve().parent
    if pkg.parent.name == "lib":
        root = pkg.parent.parent
        if (root / ".git").exists() or (root / "pyproject.toml").exists():
            return root
    return None


def cache_root() -> Path:
    """The cache directory, not created here: ``$DINOSAL_CACHE`` if set, else
    ``$XDG_CACHE_HOME/dinosal``, else ``~/.cache/dinosal`` (see module doc)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).expanduser().is_absolute():  # the XDG spec ignores a relative value
        return Path(xdg).expanduser() / "dinosal"
    return Path.home() / ".cache" / "dinosal"


def _plain(value: Any) -> Any:
    """JSON-able form of a config value (dataclasses, tuples, paths, numpy)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__type__": type(value).__name__}
        version = getattr(type(value), KEY_VERSION_ATTR, None)
        if version is not None:  # the code the config describes changed: a new key
            out["__version__"] = _plain(version)
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


def files_fingerprint(root, files) -> dict:
    """The identity of a set of files on disk, cheap enough for 100k images.

    ``root``: the folder the files are read from; ``files``: their paths (under
    ``root``). Returns ``{"root": resolved root, "n_files": count,
    "fingerprint": 16 hex digits}``, the fingerprint being a sha256 over each
    file's path relative to ``root``, its size in bytes and its modification
    time in ns, in sorted order. The file contents are not read: a file
    rewritten with the same size and mtime keeps its fingerprint, every
    added, removed, renamed, resized or touched file changes it.

    Raises ``FileNotFoundError`` naming a file that vanished while listed.
    """
    root = Path(root).resolve()
    rows = []
    for f in files:
        f = Path(f)
        try:
            st = f.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"{f}: listed in {root} but no longer there") from None
        rel = os.path.relpath(f.resolve(), root)
        rows.append(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()[:16]
    return {"root": str(root), "n_files": len(rows), "fingerprint": digest}


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


class AtomicWriteError(OSError):
    """An atomic write failed (a full disk, a quota, a dead file system).

    The message names the target file, the temporary file (removed: nothing
    is left behind and the target, if it existed, is unchanged), the free
    space on that file system and the cause (e.g. torch's
    ``[enforce fail at inline_container.cc:...]``, which names none of
    these). ``errno`` is the cause's when it has one; the cause is chained.
    """


def _free_space(folder: Path) -> tuple[str, bool]:
    """``("<n> free on its file system", looks_full)`` for ``folder``."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown", False
    size, unit = float(free), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{size:.3g} {unit} free on its file system", free < 256 * 2**20


def write_failed(path, tmp, err: BaseException) -> AtomicWriteError:
    """The :class:`AtomicWriteError` for a failed write of ``path`` through
    ``tmp`` (a temporary file or folder beside it, already removed), caused
    by ``err``; for writers that cannot use the helpers below."""
    path = Path(path)
    free, low = _free_space(path.parent)
    code = getattr(err, "errno", None) if isinstance(err, OSError) else None
    where = f"the temporary file {tmp}, removed" if tmp else f"a temporary file in {path.parent}"
    hint = ""
    if low or code in (errno.ENOSPC, errno.EDQUOT):
        hint = "; the disk looks full: free some space (the run cache can move with $DINOSAL_CACHE)"
    message = f"could not write {path} (through {where}; {free}){hint}: {type(err).__name__}: {err}"
    return AtomicWriteError(code, message) if code else AtomicWriteError(message)


def _atomic_write(path, write: Callable[[str], None]) -> Path:
    """Create a temporary file beside ``path``, let ``write(tmp)`` fill it,
    ``os.replace`` it onto ``path``; on failure remove it and raise
    :class:`AtomicWriteError` for I/O errors (``OSError``, and torch's
    writer's ``RuntimeError``), or the error itself otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(err, (OSError, RuntimeError)) and not isinstance(err, AtomicWriteError):
            raise write_failed(path, tmp, err) from err
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same
    directory and ``os.replace`` (readers see the old or the new file).

    A failed write (full disk, ...) raises :class:`AtomicWriteError` (an
    ``OSError``) naming ``path``, the temporary file, the free space and the
    cause, and leaves no temporary file behind.
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return _atomic_write(path, write)


def atomic_write_text(path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path) -> Path:
    """``torch.save`` to a temporary file, then ``os.replace`` onto ``path``.

    Errors as :func:`atomic_write_bytes`: torch's writer reports a full disk
    as ``RuntimeError: [enforce fail at inline_container.cc:...]``; it comes
    out as :class:`AtomicWriteError` with the target, the temporary file and
    the free space. Errors of pickling ``obj`` pass through unchanged.
    """
    import torch

    return _atomic_write(path, lambda tmp: torch.save(obj, tmp))


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
    ``rebuild=True`` replaces an existing artifact. Anything at that path that
    the cache did not write (no manifest with this key, or a link) raises
    ``FileExistsError`` before ``build_fn`` runs, and stays as it was.
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
        if final.exists() or final.is_symlink():  # replaced below only if the cache wrote it
            try:
                own = not final.is_symlink() and read_manifest(final).get("key") == key
            except (OSError, ValueError, AttributeError):
                own = False
            if not own:
                raise FileExistsError(f"{final}: not an artifact of the run cache (no manifest with key {key}); "
                                      "nothing was changed. Move it away to build this artifact.")
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
