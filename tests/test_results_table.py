"""README.md's "Results at a glance" table is ``bench/results_table.py``'s output from ``bench/results/*.json``."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import results_table  # bench/results_table.py (pytest puts bench/ on the path: pyproject's pythonpath)

ROOT = Path(__file__).resolve().parents[1]


def test_every_row_names_an_existing_json() -> None:
    for _, name, _ in results_table.ROWS:
        assert (results_table.RESULTS / name).is_file(), name


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="the dates come from git log")
def test_readme_section_is_the_generated_table() -> None:
    """Fails when a benchmark was rerun (or the script changed) without ``bench/results_table.py --write``."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count(results_table.BEGIN) == 1 and readme.count(results_table.END) == 1
    assert results_table.section(readme) == results_table.table(), \
        "README.md's results table is stale: run .venv/bin/python bench/results_table.py --write"


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="the dates come from git log")
def test_results_page_is_generated() -> None:
    """docs/results.md is the script's page: every row, with its JSON, machine, date and explaining page."""
    text = (ROOT / "docs" / "results.md").read_text()
    assert text == results_table.page(), \
        "docs/results.md is stale: run .venv/bin/python bench/results_table.py --write"
    for _, name, _ in results_table.ROWS:
        assert f"`bench/results/{name}`" in text
        doc = results_table.PAGES.get(name)
        assert doc is None or (ROOT / "docs" / doc).is_file(), doc


def test_write_rewrites_only_the_section(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(f"before\n{results_table.BEGIN}\nold\n{results_table.END}\nafter\n")
    assert results_table.write(path) is True
    text = path.read_text()
    assert text.startswith("before\n") and text.endswith(f"{results_table.END}\nafter\n") and "old" not in text
    assert results_table.write(path) is False
