"""Bad inputs are refused early: exit 2, one short line, before any expensive work; files stay intact.

Headers are compared before samples are decoded, renders and decodes are bounded by what a file's size
justifies, write errors name the file, and a resumed fit trains exactly the steps asked in total.
"""
from __future__ import annotations

import errno
import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit.cli import main
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import (
    INRZ_PIXELS_FREE,
    MAX_HIDDEN_LAYERS,
    RENDER_FREE_POINTS,
    check_fraction_or_count,
    check_hidden,
)
from inrkit.models import save_model, siren
from inrkit.train import FitConfig
from inrkit.utils import atomic_path, atomic_write

QUICK_S = 1.5  # CPU seconds a refusal may take in-process (it reads headers only)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str, float]:
    capsys.readouterr()
    start = time.process_time()
    code = main(argv)
    seconds = time.process_time() - start
    out = capsys.readouterr()
    return code, out.out, out.err, seconds


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """Exit 2 with one short line on stderr holding every word, within QUICK_S of CPU; returns the line."""
    code, _, err, seconds = _run(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code} for {argv}: {err}"
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert len(lines[0]) <= 400, f"a {len(lines[0])}-character line"
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert seconds < QUICK_S, f"{argv}: refused after {seconds:.2f} s of CPU"
    return lines[0]


def _image_meta(h: int, w: int, c: int = 3) -> dict[str, Any]:
    return {"kind": "image", "shape": [h, w], "channels": c, "value_offset": [127.5] * c,
            "value_scale": [127.5] * c, "crop": None}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """A 24x32 RGB image and a tiny model fitted-to-it header (16x2 SIREN)."""
    y, x = np.mgrid[0:24, 0:32]
    Image.fromarray(np.stack([x * 8, y * 10, (x + y) * 4], -1).astype(np.uint8)).save(tmp_path / "img.png")
    model = siren(2, 3, [16, 16], generator=torch.Generator().manual_seed(0))
    save_model(model, tmp_path / "m.safetensors", signal=_image_meta(24, 32))
    return {"tmp": str(tmp_path), "png": str(tmp_path / "img.png"), "model": str(tmp_path / "m.safetensors")}


# ------------------------------------------------------------------ arguments
def test_negative_numbers_and_lists_reach_the_range_check(files: dict[str, str], capsys) -> None:
    out = f"{files['tmp']}/x.safetensors"
    _refused(["fit", files["png"], "-o", out, "--lr", "-1e-3"], capsys, "--lr", ">= 0")
    _refused(["fit", files["png"], "-o", out, "--lr", "-inf"], capsys, "--lr", "finite")
    _refused(["render", files["model"], "-o", f"{files['tmp']}/r.png", "--size", "-4,4"], capsys, "--size", "-4")
    _refused(["fit", files["png"], "-o", out, "--crop", "-1:4,0:3"], capsys, "--crop")
    assert not Path(out).exists()


@pytest.mark.parametrize("omega", ["0", "1e-300", "1e9"])
def test_omega0_has_a_sane_range(files: dict[str, str], omega: str, capsys) -> None:
    _refused(["fit", files["png"], "-o", f"{files['tmp']}/x.safetensors", "--omega0", omega], capsys, "--omega0")
    with pytest.raises(InvalidInputError, match="omega0"):
        siren(2, 1, [8], omega0=float(omega))


@pytest.mark.parametrize("command", ["fit", "compress", "prune"])
def test_seeds_are_bounded(files: dict[str, str], command: str, capsys) -> None:
    out = f"{files['tmp']}/x" + (".inrz" if command == "compress" else ".safetensors")
    source = files["png"] if command == "fit" else files["model"]
    _refused([command, source, "-o", out, "--seed", "99999999999999999999999"], capsys, "--seed", "4294967295")


@pytest.mark.parametrize("argv,flag", [("meta-train {tmp}/series -o {tmp}/m.safetensors --omega0 0", "--omega0"),
                                       ("meta-train {tmp}/series -o {tmp}/m.safetensors --outer-lr 1e9", "--outer-lr"),
                                       ("nerf-train {tmp}/scene -o {tmp}/n.safetensors --lr 1e9", "--lr"),
                                       ("prune {tmp}/m.safetensors -o {tmp}/p.safetensors --lr 50", "--lr")])
def test_shared_bounds_on_every_command(argv: str, flag: str, tmp_path: Path, capsys) -> None:
    """omega0, learning rates and seeds have the same range on every command (refused while parsing)."""
    _refused(argv.format(tmp=tmp_path).split(), capsys, flag)


def test_long_lists_are_shortened(files: dict[str, str], capsys) -> None:
    line = _refused(["fit", files["png"], "-o", f"{files['tmp']}/x.safetensors", "--hidden", "16x1000"], capsys,
                    "1000 layers", f"at most {MAX_HIDDEN_LAYERS}")
    assert len(line) < 120
    _refused(["fit", files["png"], "-o", f"{files['tmp']}/x.safetensors", "--hidden", "16x10000000000000"], capsys,
             "layers")
    with pytest.raises(InvalidInputError) as info:
        check_hidden([20000] * 3 + [16] * 500)
    assert len(str(info.value)) < 200 and "..." in str(info.value)


def test_info_gives_the_real_reason(files: dict[str, str], capsys) -> None:
    _refused(["info", "/dev/zero"], capsys, "character device")
    _refused(["info", files["tmp"]], capsys, "folder")
    _refused(["info", f"{files['tmp']}/none.safetensors"], capsys, "no such model file")
    fifo = Path(files["tmp"]) / "f.npy"
    os.mkfifo(fifo)  # never opened: it would block the reader
    _refused(["eval", files["model"], str(fifo)], capsys, "FIFO")


@pytest.mark.parametrize("flag,value", [("--overcomplete", "1e9"), ("--overcomplete", "0.5"), ("--sparsity", "1.5"),
                                        ("--sparsity", "1e9"), ("--bits", "40")])
def test_compress_refuses_absurd_settings(files: dict[str, str], flag: str, value: str, capsys) -> None:
    out = Path(files["tmp"]) / "o.inrz"
    _refused(["compress", files["model"], "-o", str(out), flag, value], capsys, flag.lstrip("-"))
    assert not out.exists()


@pytest.mark.parametrize("keep", ["1.5", "0", "-1", "2.5", "nan"])
def test_prune_keep_is_a_fraction_or_a_whole_count(files: dict[str, str], keep: str, capsys) -> None:
    out = Path(files["tmp"]) / "p.safetensors"
    _refused(["prune", files["model"], "-o", str(out), "--keep", keep], capsys, "keep")
    assert not out.exists()


def test_prune_keep_count_and_fraction(files: dict[str, str], capsys) -> None:
    out = Path(files["tmp"]) / "p.safetensors"
    code, text, _, _ = _run(["prune", files["model"], "-o", str(out), "--keep", "3", "--json"], capsys)
    assert code == 0 and json.loads(text)["widths_after"] == [2, 3, 3, 3]
    code, text, _, _ = _run(["prune", files["model"], "-o", str(out), "--keep", "0.5", "--json"], capsys)
    assert code == 0 and json.loads(text)["widths_after"] == [2, 8, 8, 3]
    assert check_fraction_or_count("keep", 1) == 1
    with pytest.raises(InvalidInputError):
        check_fraction_or_count("sparsity", 20000, 16384)


@pytest.mark.parametrize("codec,bpp", [("latent", "0"), ("sinr", "0"), ("sinr", "1e-9"), ("latent", "1e-9"),
                                       ("quant", "0.01")])
def test_encode_refuses_impossible_rates_before_fitting(files: dict[str, str], codec: str, bpp: str,
                                                        capsys) -> None:
    out = Path(files["tmp"]) / "e.inrz"
    _refused(["encode", files["png"], "-o", str(out), "--codec", codec, "--bpp", bpp], capsys, "bpp")
    assert not out.exists()


def test_decode_checks_the_reference_before_writing(files: dict[str, str], capsys) -> None:
    from inrkit.compress.encode.api import CompressConfig, compress_to_target, write_bytes
    from inrkit.compress.encode.network import NETWORK_CODECS

    model = siren(2, 3, [8, 8], generator=torch.Generator().manual_seed(0))
    data = compress_to_target(model, None, CompressConfig("coin", progress=False),
                              options=NETWORK_CODECS.get("coin").make_options(), meta=_image_meta(24, 32)).data
    inrz = write_bytes(Path(files["tmp"]) / "f.inrz", data)
    bad = Path(files["tmp"]) / "notimg.png"
    bad.write_text("not an image")
    grey = Path(files["tmp"]) / "grey.png"
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(grey)
    out = Path(files["tmp"]) / "d.png"
    _refused(["decode", str(inrz), "-o", str(out), "--reference", str(bad)], capsys, "notimg.png")
    assert not out.exists()
    _refused(["decode", str(inrz), "-o", str(out), "--reference", str(grey)], capsys, "channels")
    assert not out.exists()
    code, text, _, _ = _run(["decode", str(inrz), "-o", str(out), "--reference", files["png"], "--json"], capsys)
    assert code == 0 and "psnr" in json.loads(text) and out.exists()


def test_decode_checks_a_latent_files_reference_before_writing(files: dict[str, str], capsys) -> None:
    from inrkit.compress.decode import latent as lc

    rng = np.random.default_rng(7)
    shapes = lc.level_shapes(13, 17, 4)
    latents = [rng.integers(-3, 4, s) * (rng.random(s) < 0.4) for s in shapes]
    arm = lc.FixedArm([rng.integers(-200, 200, (6, 12)), rng.integers(-200, 200, (2, 6))],
                      [rng.integers(-300, 300, 6), np.array([0, 700])], fw=8)
    synth_w = [np.rint(rng.normal(0, 0.5, (5, 4)) * 256) / 256, np.rint(rng.normal(0, 0.5, (3, 5)) * 256) / 256]
    synth_b = [np.rint(rng.normal(0, 0.1, 5) * 256) / 256, np.full(3, 0.5)]
    tmp = Path(files["tmp"])
    inrz = tmp / "g.inrz"
    inrz.write_bytes(lc.write(lc.LatentImage((13, 17), 3, latents, arm, synth_w, synth_b, 8, {"kind": "image"})))
    bad = tmp / "notimg.png"
    bad.write_text("not an image")
    good = tmp / "ref.png"
    Image.fromarray(np.zeros((13, 17, 3), np.uint8)).save(good)
    out = tmp / "d.png"
    _refused(["decode", str(inrz), "-o", str(out), "--reference", str(bad)], capsys, "notimg.png")
    _refused(["decode", str(inrz), "-o", str(out), "--reference", files["png"]], capsys, "24x32", "13x17")
    assert not out.exists()
    code, text, err, _ = _run(["decode", str(inrz), "-o", str(out), "--reference", str(good), "--json"], capsys)
    assert code == 0 and "psnr" in json.loads(text) and out.exists(), err


# ------------------------------------------------------------------ headers before pixels
def _model(tmp: str, name: str, meta: dict[str, Any], in_dim: int = 2, out_dim: int = 1) -> str:
    path = Path(tmp) / name
    save_model(siren(in_dim, out_dim, [8, 8], generator=torch.Generator().manual_seed(0)), path, signal=meta)
    return str(path)


def test_signal_headers_are_compared_before_decoding(files: dict[str, str], capsys) -> None:
    """Large signals that do not match the model are refused from their headers (no pixel decoded)."""
    from inrkit.signals.readers import write_vti

    tmp = Path(files["tmp"])
    grey = _model(files["tmp"], "grey.safetensors", _image_meta(64, 64, 1))
    vol = _model(files["tmp"], "vol.safetensors", {"kind": "volume", "shape": [32, 32, 32], "channels": 1,
                                                    "value_offset": [0.0], "value_scale": [1.0]}, in_dim=3)
    Image.fromarray(np.zeros((3000, 3000), np.uint8)).save(tmp / "big.png")
    Image.fromarray(np.zeros((3000, 3000), np.uint8)).save(tmp / "big.jpg", quality=50)
    write_vti(tmp / "big.vti", np.zeros((160, 160, 160), np.float32))
    np.save(tmp / "big.npy", np.zeros((160, 160, 160), np.uint8))
    for name in ("big.png", "big.jpg"):
        _refused(["eval", grey, str(tmp / name)], capsys, "3000x3000", "64x64")
        _refused(["prune", grey, "-o", str(tmp / "p.safetensors"), "--signal", str(tmp / name)], capsys, "3000x3000")
        _refused(["compress", grey, "-o", str(tmp / "c.inrz"), "--signal", str(tmp / name)], capsys, "3000x3000")
    for name in ("big.vti", "big.npy"):
        _refused(["eval", vol, str(tmp / name)], capsys, "160x160x160", "32x32x32")
    _refused(["eval", vol, files["png"]], capsys, "image", "volume")
    _refused(["eval", files["model"], str(tmp / "big.png")], capsys, "channels")
    assert not (tmp / "p.safetensors").exists() and not (tmp / "c.inrz").exists()


# ------------------------------------------------------------------ renders and decodes bounded by file size
def test_render_without_size_is_bounded_by_the_file(files: dict[str, str], capsys) -> None:
    big = _model(files["tmp"], "m4096.safetensors", _image_meta(4096, 4096, 1))
    out = Path(files["tmp"]) / "r.png"
    _refused(["render", big, "-o", str(out)], capsys, "--size", "16777216 points")
    assert not out.exists()
    code, _, err, _ = _run(["render", big, "-o", str(out), "--size", "64,48"], capsys)
    assert code == 0, err
    assert Image.open(out).size == (48, 64)
    wide = Path(files["tmp"]) / "wide.safetensors"  # a 68 KB network asked for 1465^2 points: too much work
    save_model(siren(2, 3, [90, 90, 90], generator=torch.Generator().manual_seed(0)), wide,
               signal=_image_meta(1465, 1465))
    _refused(["render", str(wide), "-o", str(out)], capsys, "operations", "--size")
    side = int(RENDER_FREE_POINTS ** 0.5)
    assert _run(["render", _model(files["tmp"], "free.safetensors", _image_meta(side // 4, side, 1)),
                 "-o", str(out)], capsys)[0] == 0


def test_render_is_chunked_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """grid_values evaluates a chunk at a time into one array; the values equal a single evaluation."""
    from inrkit.signals import render
    from inrkit.signals.base import grid_coords, predict

    model = siren(3, 2, [8], generator=torch.Generator().manual_seed(1))
    meta = {"channels": 2, "value_offset": [1.0, 2.0], "value_scale": [3.0, 4.0]}
    shape = [5, 7, 9]
    whole = predict(model, grid_coords(shape)).numpy().astype(np.float64) * [3.0, 4.0] + [1.0, 2.0]
    monkeypatch.setattr(render, "RENDER_CHUNK", 37)
    chunked = render.grid_values(model, meta, shape)
    assert chunked.shape == (5, 7, 9, 2) and np.array_equal(chunked.reshape(-1, 2), whole)


def test_inrz_free_pixels_are_bounded(tmp_path: Path, capsys) -> None:
    """A tiny coin file asking 2048^2 pixels is refused; at the free allowance it decodes quickly."""
    from inrkit.compress.encode.api import CompressConfig, compress_to_target, write_bytes
    from inrkit.compress.encode.network import NETWORK_CODECS

    model = siren(2, 3, [16, 16], generator=torch.Generator().manual_seed(0))
    for side, refused in ((2048, True), (int(INRZ_PIXELS_FREE ** 0.5), False)):
        data = compress_to_target(model, None, CompressConfig("coin", progress=False),
                                  options=NETWORK_CODECS.get("coin").make_options(), meta=_image_meta(side, side)).data
        assert len(data) < 1000
        inrz = write_bytes(tmp_path / f"c{side}.inrz", data)
        out = tmp_path / f"c{side}.png"
        if refused:
            _refused(["decode", str(inrz), "-o", str(out)], capsys, "pixels", "justifies")
            assert not out.exists()
        else:
            code, _, err, seconds = _run(["decode", str(inrz), "-o", str(out)], capsys)
            assert code == 0, err
            assert seconds < 2.0, f"{seconds:.2f} s of CPU at the free allowance"


# ------------------------------------------------------------------ write errors
def _limited(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE")
@pytest.mark.parametrize("command", ["fit", "render"])
def test_write_errors_name_the_file(files: dict[str, str], command: str) -> None:
    """A file-size limit (as a full disk) is exit 2 with the file's name; the old file stays, no temp file."""
    tmp = Path(files["tmp"])
    target = tmp / ("old.safetensors" if command == "fit" else "old.png")
    target.write_bytes(b"previous contents")
    argv = (["fit", files["png"], "-o", str(target), "--hidden", "64x2", "--steps", "2", "--no-progress"]
            if command == "fit" else ["render", files["model"], "-o", str(target), "--size", "300,300"])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "inrkit", *argv], capture_output=True, text=True, env=env,
                            preexec_fn=lambda: _limited(4096), timeout=300)
    lines = [line for line in result.stderr.strip().splitlines() if "Warning" not in line]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and str(target) in lines[0] and "internal error" not in lines[0], result.stderr
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_path"])
def test_disk_full_names_the_target(tmp_path: Path, writer: str) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OSError) as info:
        with (atomic_write(target) if writer == "atomic_write" else atomic_path(target)):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


# ------------------------------------------------------------------ resume
def test_resume_trains_exactly_the_steps_asked(files: dict[str, str], capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted checkpointed fit, resumed twice: 60 steps in total, each step trained once."""
    from inrkit.api import ModelSpec, fit_file
    from inrkit.train.checkpoint import load_checkpoint

    fit_module = importlib.import_module("inrkit.train.fit")

    tmp = Path(files["tmp"])
    ckpt, out = str(tmp / "c.ckpt"), str(tmp / "m.safetensors")
    trained: list[int] = []
    step = fit_module._step

    def counted(state: Any, *args: Any) -> Any:
        trained.append(state.step + 1)
        if len(trained) == 25 and not state.config.resume:  # killed midway (after the checkpoint at step 20)
            raise KeyboardInterrupt
        return step(state, *args)

    monkeypatch.setattr(fit_module, "_step", counted)
    cfg = FitConfig(steps=60, checkpoint_path=ckpt, checkpoint_every=10, progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit_file(files["png"], out, ModelSpec(hidden=(8, 8)), cfg)
    assert load_checkpoint(ckpt, "fit").step == 20
    argv = ["fit", files["png"], "-o", out, "--hidden", "8x2", "--steps", "60", "--checkpoint", ckpt,
            "--checkpoint-every", "10", "--resume", "--json"]
    for resumed in (range(21, 61), range(61, 61)):
        trained.clear()
        code, text, err, _ = _run(argv, capsys)
        assert code == 0, err
        assert json.loads(text)["steps"] == 60
        assert trained == list(resumed)
    ck = load_checkpoint(ckpt, "fit")
    assert ck.step == 60 and ck.history[-1]["step"] == 60
    assert {int(state["step"]) for state in ck.adam.values()} == {60}  # Adam took 60 steps, not more
    _refused([*argv[:7], "30", *argv[8:]], capsys, "step 60", "30 steps")


# ------------------------------------------------------------------ --json: no progress bars
def test_json_draws_no_progress_bars(files: dict[str, str], capsys) -> None:
    tmp = files["tmp"]
    for argv in (["fit", files["png"], "-o", f"{tmp}/j.safetensors", "--hidden", "8x2", "--steps", "20"],
                 ["mesh", files["model"], "-o", f"{tmp}/j.vtu", "--max-dofs", "200"]):
        code, text, err, _ = _run([*argv, "--json"], capsys)
        assert code == 0, err
        json.loads(text)
        assert "it/s" not in err and "%|" not in err, err


def test_json_hides_terminal_bars_too(files: dict[str, str], capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bars shown on a terminal only (large renders) are off under --json, and back after it."""
    from inrkit.utils import NO_PROGRESS_ENV, terminal_bar

    seen: list[bool | None] = []
    monkeypatch.setattr("inrkit.signals.render.terminal_bar", lambda show=True: seen.append(terminal_bar(show)))
    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)
    out = f"{files['tmp']}/big.png"
    assert _run(["render", files["model"], "-o", out, "--size", "1100,1000", "--json"], capsys)[0] == 0
    assert _run(["render", files["model"], "-o", out, "--size", "1100,1000"], capsys)[0] == 0
    assert seen == [True, None] and NO_PROGRESS_ENV not in os.environ


# ------------------------------------------------------------------ tests clean up after themselves
def test_fuzz_modules_leave_no_temp_folders(tmp_path: Path) -> None:
    """The fuzz modules' input folders and decoder workers' folders are removed (TMPDIR stays empty)."""
    env = dict(os.environ, TMPDIR=str(tmp_path), INRKIT_FUZZ_EXAMPLES="2", OMP_NUM_THREADS="1")
    tests = Path(__file__).parent
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tests / "test_fuzz_models.py"), str(tests / "test_inrz_fuzz.py"),
                             "-k", "npz_members or absurd_architecture or worst_allowed_pixels"],
                            capture_output=True, text=True, env=env, cwd=tests.parent, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("inrkit-")) == []


def test_library_checks_match(tmp_path: Path) -> None:
    from inrkit.limits import check_header_render

    with pytest.raises(InvalidFileError, match="--size"):
        check_header_render(RENDER_FREE_POINTS + 10_000, 100, "m.safetensors")
    check_header_render(RENDER_FREE_POINTS, 0, "m.safetensors")
