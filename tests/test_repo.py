"""Repository rules: clean notebooks, one parameters cell, pins in sync, a true TOC, chapters without library code."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from dinosal import config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _pin(spec: str) -> tuple[str, str]:
    name, _, version = spec.partition("==")
    return name.strip().lower().replace("_", "-"), version.strip()


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(nb_path):
    nb = json.loads(nb_path.read_text())
    dirty = [
        i for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{nb_path.name}: code cells {dirty} carry outputs or execution counts"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell_with_profile(nb_path):
    nb = json.loads(nb_path.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{nb_path.name}: {len(cells)} cells tagged 'parameters'"
    src = "".join(cells[0]["source"])
    assert re.search(r"^profile\s*=\s*\"cpu\"", src, re.M), f"{nb_path.name}: no profile = \"cpu\""
    # Only assignments: every non-blank, non-comment line assigns a name.
    for line in src.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert re.match(r"^[A-Za-z_]\w*\s*=", line), f"{nb_path.name}: not an assignment: {line!r}"
    # The chapter it resolves must be registered, and every knob must be a parameter.
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    chapter = re.search(r'chapter_params\("([^"]+)"', code)
    assert chapter, f"{nb_path.name}: no chapter_params(...) call"
    valid = set(config.valid_parameters(chapter.group(1)))
    names = set(re.findall(r"^([A-Za-z_]\w*)\s*=", src, re.M))
    assert names <= valid, f"{nb_path.name}: knobs {sorted(names - valid)} are not parameters"


BENCHMARK_ONLY_EXTRAS = ("bench",)  # speed scripts' peers (lightly): not the book's environment


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_pin(s) for s in project["dependencies"])
    for name, group in project["optional-dependencies"].items():
        if name not in BENCHMARK_ONLY_EXTRAS:
            wanted.update(_pin(s) for s in group)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = dict(_pin(s) for s in pip_section if not s.startswith("-e"))
    assert listed == wanted


def test_toc_lists_existing_chapters_and_every_chapter_is_listed():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections", []))

    walk(toc.get("chapters", []))
    for part in toc.get("parts", []):
        walk(part["chapters"])
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f"TOC names missing {f}"
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "book").glob("*") if p.suffix in (".md", ".ipynb")}
    assert pages <= set(files), f"pages not in the TOC: {sorted(pages - set(files))}"


# ---------------------------------------------------------------- chapters carry no library code


def _code_trees(nb_path: Path) -> list[ast.Module]:
    """The parsed code cells of a chapter (IPython magics and shell escapes blanked out)."""
    trees = []
    for c in json.loads(nb_path.read_text())["cells"]:
        if c["cell_type"] == "code":
            lines = "".join(c["source"]).splitlines()
            trees.append(ast.parse("\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)))
    return trees


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_two_chapters_define_the_same_function_or_class():
    owners: dict[str, set[str]] = {}
    for nb_path in NOTEBOOKS:
        for tree in _code_trees(nb_path):
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    owners.setdefault(node.name, set()).add(nb_path.name)
    shared = {name: sorted(where) for name, where in owners.items() if len(where) > 1}
    assert not shared, f"defined in more than one chapter (move them into the library): {shared}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_touches_no_private_name(nb_path):
    found = []
    for tree in _code_trees(nb_path):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dinosal":
                found += [f"from {node.module} import {a.name}" for a in node.names if _private(a.name)]
                found += [f"from {node.module}" for part in node.module.split(".") if _private(part)]
            elif isinstance(node, ast.Import):
                found += [f"import {a.name}" for a in node.names
                          if a.name.split(".")[0] == "dinosal" and any(_private(p) for p in a.name.split("."))]
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                found.append(f"line {node.lineno}: .{node.attr}")
    assert not found, f"{nb_path.name} reaches private names (the library must offer them publicly): {found}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_prose_is_markdown_not_built_in_code(nb_path):
    """Prose with numbers is a markdown cell with glued values, never ``display(Markdown(f"..."))``."""
    calls = []
    for tree in _code_trees(nb_path):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name == "Markdown":
                    calls.append(node.lineno)
    assert not calls, f"{nb_path.name}: Markdown(...) built in code cells (lines {calls}); glue the numbers instead"


# ---------------------------------------------------------------- citations match the bibliography

CITE_ROLE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
BIB_ENTRY = re.compile(r"^@(\w+)\s*\{\s*([^,\s]+)\s*,", re.M)


def _book_markdown() -> dict[str, str]:
    """The prose of every page: book/*.md, and the markdown cells of book/*.ipynb."""
    pages = {p.name: p.read_text() for p in sorted((ROOT / "book").glob("*.md"))}
    for nb_path in NOTEBOOKS:
        cells = json.loads(nb_path.read_text())["cells"]
        pages[nb_path.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return pages


def test_every_citation_is_in_the_bibliography_and_every_entry_is_cited():
    bib = {key for kind, key in BIB_ENTRY.findall((ROOT / "references.bib").read_text())
           if kind.lower() not in ("comment", "string", "preamble")}
    cited = {page: {k.strip() for m in CITE_ROLE.findall(text) for k in m.split(",")}
             for page, text in _book_markdown().items()}
    used = set().union(*cited.values())
    unknown = {page: sorted(keys - bib) for page, keys in cited.items() if keys - bib}
    assert not unknown, f"cited but not in references.bib: {unknown}"
    assert bib <= used, f"in references.bib but cited nowhere: {sorted(bib - used)}"
    silent = [page for page in cited if page != "bibliography.md" and not cited[page]]
    assert not silent, f"pages that cite no source: {silent}"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config.get("bibtex_bibfiles") == ["references.bib"]
    assert "```{bibliography}" in (ROOT / "book" / "bibliography.md").read_text()
