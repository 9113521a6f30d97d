"""The library's shape: floors without circles, small modules, a command line outside the trainer.

``make test`` runs ``lint-imports`` itself (the contracts in pyproject.toml);
these tests check what the contracts cannot say: that every package is
covered by one, that the bottom floor imports nothing, that the profile
tables are plain data, and that modules stay small.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "dinosal"
MAX_LINES = 600


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _dinosal_imports(path: Path) -> set[str]:
    """The dinosal modules a file imports (anywhere in it, lazily or not), as absolute names."""
    package = list(path.relative_to(ROOT / "lib").parts[:-1])  # the package a relative import starts from
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "dinosal" or name.startswith("dinosal."):
                out.add(name)
                folder = LIB.parent / name.replace(".", "/")
                out.update(f"{name}.{a.name}" for a in node.names  # `from . import zoo`: a module
                           if (folder / f"{a.name}.py").exists() or (folder / a.name / "__init__.py").exists())
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "dinosal")
    return out


def test_every_package_of_dinosal_has_an_exhaustive_layers_contract():
    contracts = {c["containers"][0]: c for c in _contracts() if c.get("containers")}
    packages = sorted(".".join(p.parent.relative_to(ROOT / "lib").parts) for p in LIB.rglob("__init__.py")
                      if "__pycache__" not in p.parts)
    for package in packages:
        folder = ROOT / "lib" / package.replace(".", "/")
        children = [p for p in folder.iterdir() if p.name != "__init__.py" and p.name != "__pycache__"
                    and (p.suffix == ".py" or (p / "__init__.py").exists())]
        if not children:
            continue
        assert package in contracts, f"{package}: no layers contract in pyproject.toml names its modules"
        assert contracts[package]["type"] == "layers" and contracts[package].get("exhaustive"), package


def test_floor_zero_imports_nothing_above_it():
    assert _dinosal_imports(LIB / "params.py") == set(), "params must import nothing of dinosal"
    assert _dinosal_imports(LIB / "transfer_tables.py") == set(), "transfer_tables must import nothing of dinosal"
    assert _dinosal_imports(LIB / "profiles.py") == {"dinosal.params", "dinosal.transfer_tables"}, \
        "profiles: plain data over params and the transfer tables"


def test_profile_tables_are_plain_data_that_config_registers():
    from dinosal import config, profiles

    assert not hasattr(profiles, "register_chapter")
    assert set(profiles.CHAPTERS) <= set(config.chapters())
    for name, (cls, table) in profiles.CHAPTERS.items():
        assert config._lookup(name)[0] is cls
        assert set(table) == set(config.PROFILES), name


def test_the_trainer_does_not_import_the_zoo():
    for path in (LIB / "train").glob("*.py"):
        if path.name == "__main__.py":
            continue
        imported = _dinosal_imports(path)
        assert not {m for m in imported if m in ("dinosal.zoo", "dinosal.cli")}, f"{path.name}: {imported}"


@pytest.mark.parametrize("path", sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts),
                         ids=lambda p: str(p.relative_to(LIB)))
def test_no_module_is_over_600_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)}: {n} lines; split it (at most about {MAX_LINES})"


def test_python_m_dinosal_train_help():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "dinosal.train", "--help"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--recipe" in run.stdout and "python -m dinosal.train" in run.stdout
