"""The API reference build (docs/build_api.py): every public module listed, a page rendered from docstrings."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_api"] = module
    spec.loader.exec_module(module)
    return module


def test_public_modules_cover_the_packages_and_skip_private_ones() -> None:
    names = _builder().public_modules()
    for want in ("inrkit", "inrkit.amr.mesher", "inrkit.prune.api", "inrkit.train", "inrkit.cli.common"):
        assert want in names
    assert not any(part.startswith("_") for name in names for part in name.split("."))


def test_reference_page_documents_config_arguments(tmp_path: Path) -> None:
    pytest.importorskip("pdoc")
    index = _builder().build(tmp_path, ["inrkit.amr.mesher"])
    page = (tmp_path / "inrkit" / "amr" / "mesher.html").read_text(encoding="utf-8")
    assert index.exists() and "MeshConfig" in page and "build_mesh" in page
    assert "error-driven" in page  # the Args: section rendered
