"""The documentation is tested: the README's size, links, tables, code and quick start, the
Python examples of the docs pages, and the documentation site's strict build."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "benchmarks"))

import tables  # noqa: E402

FENCE = re.compile(r"^( *)(<!-- skip-test: (.+?) -->\n\1)?```(\w+)\n(.*?)^\1```", re.S | re.M)


def blocks(text: str, language: str) -> list[tuple[str, str | None]]:
    """The code blocks of ``language`` in ``text``: (code, the reason to skip it or None)."""
    out = []
    for m in FENCE.finditer(text):
        if m.group(4) == language:
            indent = len(m.group(1))
            code = "\n".join(line[indent:] for line in m.group(5).splitlines())
            out.append((code, m.group(3)))
    return out


def test_readme_is_short():
    # issue 28: a newcomer reads it in five minutes; the rest lives in docs/
    assert len(README.read_text()) <= 15_000


def test_readme_links_point_to_files():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert len(local) >= 15  # the documentation links, the pictures
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_tables_are_the_json():
    text = README.read_text()
    assert "<!-- begin table: quality -->" in text
    assert tables.fill_blocks(text) == text, (
        "the README's tables differ from benchmarks/results/*.json: run "
        "`python benchmarks/tables.py --readme`")


def test_tables_carry_the_json_numbers():
    report = tables.load("realism")
    quality = tables.render("quality")
    res = report["parts"]["callosum_sssem"]
    lead = tables.margin(res, "textured", "0.3")
    assert f"| callosum_sssem | {lead:+.1f} dB" in quality
    speed = tables.render("speed")
    first = tables.load("bench_repair")["rows"][0]
    assert f"| {first['size']}^2 | " in speed and f" | {first['median_s']:.2f} s |" in speed
    with pytest.raises(KeyError, match="no table named"):
        tables.render("nonsense")


def test_every_docs_table_marker_is_known():
    names = set()
    for page in DOCS.glob("*.md"):
        names |= set(tables.MARKER.findall(page.read_text()))
    assert {"evaluation-isbi", "realism-summary", "speed", "detection"} <= names
    assert names <= set(tables.TABLES)
    for name in names:
        assert tables.render(name).count("\n|") >= 2


@pytest.fixture
def sample_folder(tmp_path, monkeypatch):
    """A folder holding ``stack.tif`` (the bundled sample) and ``mask.tif`` (damage on 12),
    as the examples of the docs expect; the current folder while the test runs."""
    from napari_flowinpaint.tasks.io import load_sample

    stack, _ = load_sample()
    masks = np.zeros(stack.shape, np.uint8)
    masks[12, 60:120, 40:150] = 1
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    tifffile.imwrite(tmp_path / "mask.tif", masks)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_python_blocks(text: str, where: str) -> int:
    ran = 0
    namespace: dict = {"__name__": "__docs__"}
    for code, skip in blocks(text, "python"):
        if skip:
            continue
        try:
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 (our own docs)
        except Exception as exc:  # the snippet is stale: say which
            raise AssertionError(f"a Python example of {where} fails:\n{code}") from exc
        ran += 1
    return ran


def test_readme_python_runs(sample_folder):
    assert run_python_blocks(README.read_text(), "README.md") == 1


@pytest.mark.parametrize("page", ["python.md", "detection.md", "provenance.md"])
def test_docs_python_runs(sample_folder, page):
    assert run_python_blocks((DOCS / page).read_text(), f"docs/{page}") >= 1


def test_every_docs_python_block_runs_or_says_why_not():
    for page in DOCS.glob("*.md"):
        for _code, skip in blocks(page.read_text(), "python"):
            assert skip or page.name in ("python.md", "detection.md", "provenance.md"), (
                f"docs/{page.name} has a Python example that no test runs; add the page to "
                "test_docs_python_runs or mark the block <!-- skip-test: reason -->")


def test_readme_quick_start_runs(tmp_path):
    text = README.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (commands, _), = blocks(section, "bash")
    lines = [c for c in commands.splitlines() if c.strip()]
    assert len(lines) >= 4
    for line in lines:
        words = line.split()
        assert words[0] == "napari-flowinpaint", line
        done = subprocess.run([sys.executable, "-m", "napari_flowinpaint", *words[1:]],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    for name in ("demo/demo.png", "repaired.tif", "confidence.tif", "found.tif", "found.csv",
                 "auto.ome.zarr"):
        assert (tmp_path / name).exists(), name
    repaired = tifffile.imread(tmp_path / "repaired.tif")
    damaged = tifffile.imread(tmp_path / "demo" / "damaged.tif")
    mask = tifffile.imread(tmp_path / "demo" / "mask.tif") > 0
    assert np.array_equal(repaired[~mask], damaged[~mask])  # only the mask changes
    assert not np.array_equal(repaired[mask], damaged[mask])


def test_docs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which(
        "mkdocs")
    assert mkdocs, "mkdocs is part of the testing extra: pip install -e '.[testing]'"
    done = subprocess.run([mkdocs, "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    evaluation = (tmp_path / "site" / "evaluation" / "index.html").read_text()
    assert "<!-- table:" not in evaluation and "flowinpaint" in evaluation
    report = tables.load("eval_isbi")["results"]["flowinpaint"]["0.3"]
    assert f"{report['psnr']:.2f}" in evaluation  # the table made from the JSON
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "FlowInpainter" in api and "repair_to_file" in api
