"""Repository rules: clean notebooks, one parameters cell, pins in sync, a true TOC."""

from __future__ import annotations

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


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_pin(s) for s in project["dependencies"])
    for group in project["optional-dependencies"].values():
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
