"""``inrkit eval-codec`` (CompressAI-style RD JSON over a folder) and MS-SSIM."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inrkit.cli import main
from inrkit.compress.encode.evaluate import available_baselines, list_images
from inrkit.errors import InvalidInputError
from inrkit.metrics import ms_ssim


def _pattern(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([128 + 100 * np.sin(x / 9.0), 128 + 90 * np.cos(y / 7.0), (x + y) % 256], -1).astype(np.float64)


# ------------------------------------------------------------------ MS-SSIM
@pytest.mark.parametrize("shape, expected", [
    ((192, 256), 0.9371073767650477),  # pytorch_msssim 1.0.0 ms_ssim(data_range=255), float64 tensors
    ((177, 203), 0.9370720112236564),  # odd sides: zero-padded average pooling
])
def test_ms_ssim_matches_pytorch_msssim(shape: tuple[int, int], expected: float) -> None:
    clean = _pattern(*shape)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 12, clean.shape), 0, 255).round()
    assert ms_ssim(noisy, clean, data_range=255.0) == pytest.approx(expected, abs=1e-5)


def test_ms_ssim_identity_grey_and_limits() -> None:
    img = _pattern(170, 180)
    assert ms_ssim(img, img) == pytest.approx(1.0)
    assert ms_ssim(img[..., 0], img[..., 0]) == pytest.approx(1.0)  # [H, W]
    assert ms_ssim(img[..., 0] + 30, img[..., 0]) < 1.0
    with pytest.raises(InvalidInputError, match="160"):
        ms_ssim(img[:160], img[:160])
    with pytest.raises(InvalidInputError, match="equal shapes"):
        ms_ssim(img, img[:-1])


# ------------------------------------------------------------------ eval-codec
@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    root.mkdir()
    for i, (h, w) in enumerate(((168, 176), (172, 168))):
        noisy = _pattern(h, w) + np.random.default_rng(i).normal(0, 20, (h, w, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(root / f"im{i}.png")
    (root / "notes.txt").write_text("not an image")
    return root


def test_eval_codec_writes_compressai_json(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rd" / "inrkit.json"
    baselines = [b for b in ("jpeg", "webp") if b in available_baselines()]
    argv = ["eval-codec", str(folder), "-o", str(out), "--codec", "quant", "--bpp", "0.5,2", "--steps", "15",
            "--hidden", "16x2", "--qat-steps", "0", "--no-progress", "--json"]
    assert main(argv + (["--baseline", ",".join(baselines)] if baselines else [])) == 0
    summary = json.loads(capsys.readouterr().out)
    data = json.loads(out.read_text())
    assert summary["images"] == 2 and summary["output"] == str(out)
    assert data["name"] == "inrkit-quant" and data["images"] == ["im0.png", "im1.png"]
    assert data["target_bpp"] == [0.5, 2.0]
    keys = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")
    for entry in [data] + list(data["baselines"].values()):
        assert set(keys) <= set(entry["results"]) and all(len(entry["results"][k]) == 2 for k in keys)
        for name in data["images"]:
            per = entry["per_image"][name]
            assert all(len(per[k]) == 2 for k in keys)
            assert all(0 < b <= 1.2 * t for b, t in zip(per["bpp"], data["target_bpp"]))
            assert all(np.isfinite(per["psnr-rgb"])) and all(0 < m <= 1 for m in per["ms-ssim-rgb"])
            assert all(t >= 0 for t in per["encoding_time"] + per["decoding_time"])
        r = entry["results"]  # the means over the images
        first = [entry["per_image"][n]["psnr-rgb"][0] for n in data["images"]]
        assert r["psnr-rgb"][0] == pytest.approx(np.mean(first))
    for name in baselines:  # a classical codec gains quality with rate
        r = data["baselines"][name]["results"]
        assert r["psnr-rgb"][1] > r["psnr-rgb"][0]
    assert sorted(p.name for p in out.parent.iterdir()) == ["inrkit.json"]  # atomic: no temp file left


def test_eval_codec_crop_and_max_images(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-codec", str(folder), "--codec", "quant", "--bpp", "2", "--steps", "5", "--hidden", "8",
                 "--qat-steps", "0", "--crop", "0:32,0:40", "--max-images", "1", "--no-progress", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # without -o: the whole result
    assert data["images"] == ["im0.png"] and data["settings"]["crop"] == [0, 32, 0, 40]
    assert data["per_image"]["im0.png"]["ms-ssim-rgb"] == [None]  # 32x40 is too small for 5 scales
    assert data["results"]["ms-ssim-rgb"] == [None] and np.isfinite(data["results"]["psnr-rgb"][0])


@pytest.mark.parametrize("extra, says", [
    (["--bpp", "0"], "bpp"),
    (["--bpp", "1,nan"], "--bpp"),
    (["--baseline", "bpg"], "--baseline"),
    (["--codec", "nosuch"], "--codec"),
    (["--crop", "0:400,0:40"], "--crop"),
])
def test_eval_codec_refusals(extra: list[str], says: str, folder: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["eval-codec", str(folder), "-o", str(out), "--steps", "2", "--no-progress"] + extra) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_list_images_refuses_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such folder"):
        list_images(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="no .png"):
        list_images(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="not a folder"):
        list_images(tmp_path / "a.txt")
