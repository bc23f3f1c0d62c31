"""bench/crafted_limits.py crafts what it claims: a few cheap inputs checked (the benchmark itself is not run)."""
from __future__ import annotations

import json
from pathlib import Path

import crafted_limits as cl  # bench/crafted_limits.py (pytest puts bench/ on the path: pyproject's pythonpath)
import numpy as np
import pytest

from inrkit.compress.decode.container import unpack
from inrkit.errors import InvalidFileError
from inrkit.models.io import load_model

ROOT = Path(__file__).resolve().parents[1]


def test_npy_header_declares_two_to_the_forty(tmp_path: Path):
    f = cl.npy_header(tmp_path / "big.npy", (1 << 20, 1 << 20))
    with open(f, "rb") as handle:
        np.lib.format.read_magic(handle)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        assert handle.tell() == f.stat().st_size  # a header and no data
    assert shape == (1 << 20, 1 << 20) and not fortran and dtype == np.float32
    assert f.stat().st_size == 128


def test_model_with_shape_is_valid_and_claims_the_shape(tmp_path: Path):
    image = cl.tiny_image(tmp_path / "tiny.png")
    src = cl.tiny_model(tmp_path / "m.safetensors", image, [35, 35])
    big = cl.model_with_shape(src, tmp_path / "big.safetensors", [4096, 4096])
    from safetensors import safe_open

    with safe_open(str(big), "pt") as f:
        header = json.loads(f.metadata()["inrkit"])
    assert header["signal"]["shape"] == [4096, 4096]
    assert 6000 < big.stat().st_size < 7500
    small = cl.model_with_shape(src, tmp_path / "small.safetensors", [64, 64])  # same recipe, loadable shape
    _, loaded = load_model(small)
    assert loaded["signal"]["shape"] == [64, 64]
    tampered = bytearray(small.read_bytes())  # the digest covers the header: a changed shape is refused
    at = tampered.index(b"[64, 64]")
    tampered[at:at + 8] = b"[65, 64]"
    (tmp_path / "bad.safetensors").write_bytes(bytes(tampered))
    with pytest.raises(InvalidFileError):
        load_model(tmp_path / "bad.safetensors")


def test_grid_header_rewrite_keeps_the_file_valid(tmp_path: Path):
    image = cl.tiny_image(tmp_path / "tiny.png")
    grid = cl.tiny_grid(tmp_path / "tiny.inrz", image, steps=2)
    empty = cl.grid_with_header(grid, tmp_path / "empty.inrz", (2048, 2048), latents=b"")
    header, sections = unpack(empty.read_bytes())  # checksum and lengths verified
    assert header["shape"] == [2048, 2048] and header["codec"] == "latent"
    assert sections[0] == b"" and len(sections) == 3
    assert empty.stat().st_size < grid.stat().st_size < 1000
    half = cl.truncated(grid, tmp_path / "half.inrz")
    assert half.stat().st_size == grid.stat().st_size // 2


def test_limits_doc_table_matches_the_results():
    data = json.loads((ROOT / "bench" / "results" / "crafted_limits.json").read_text())
    doc = (ROOT / "docs" / "limits.md").read_text()
    assert cl.with_table(doc, data) == doc, "regenerate: python bench/crafted_limits.py --compare --docs"


def test_every_crafted_case_is_within_the_target_after():
    data = json.loads((ROOT / "bench" / "results" / "crafted_limits.json").read_text())
    after = data["runs"]["after"]["results"]
    assert after and all(r["outcome"] != "crashed" for r in after)
    hostile = [r for r in after if r["group"] != "resume"]  # the resume cases are real 60-step fits
    assert [r["case"] for r in hostile if not r["within_target"]] == []
    assert all(r["exit"] == 2 and r["stderr_lines"] == 1 for r in hostile if r["group"] == "cli")
    assert [r["reported_steps"] for r in after if r["group"] == "resume"] == [60, 60]
