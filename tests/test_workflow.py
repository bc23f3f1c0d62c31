"""--threads, progress on long steps, and details of the CLI workflow.

--threads on every command (default measured, see README "Threads"); progress bars on the compress
search with fine-tuning, on NeRF evaluation and on large model evaluations (SDF render); nerf-prune
refuses a width that prunes nothing; info reads NeRF files; render --size 0,0 exits 2; every --help
default is shown; fit --arch relu/tanh from the CLI.
"""
from __future__ import annotations

import argparse
import functools
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_commands import leaf_commands
from PIL import Image

import inrkit.cli as cli
from inrkit.cli import default_threads, main
from inrkit.models import save_model, siren
from inrkit.nerf import NeRFConfig, NeRFMLP, save_nerf


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm hides bars that go elsewhere)."""

    def isatty(self) -> bool:
        return True




@pytest.fixture
def image(tmp_path: Path, tiny_image: np.ndarray) -> Path:
    path = tmp_path / "img.png"
    Image.fromarray(tiny_image.astype(np.uint8)).save(path)
    return path


@pytest.fixture
def nerf_file(tmp_path: Path) -> Path:
    path = tmp_path / "nerf.safetensors"
    save_nerf(NeRFMLP(NeRFConfig.sized(16, 2, pos_freqs=2, dir_freqs=1), seed=0), path,
              {"kind": "nerf", "height": 8, "width": 8, "focal": 10.0, "near": 2.0, "far": 6.0})
    return path


# ------------------------------------------------------------------ item 3: --threads
def test_every_command_has_threads_with_its_default_in_help() -> None:
    leaves = dict(leaf_commands())
    assert len(leaves) > 20
    for path, parser in leaves.items():
        action = parser._option_string_actions.get("--threads")
        assert action is not None, f"{' '.join(path)} has no --threads"
        assert "default" in (action.help or "") and str(default_threads()) in action.help


def test_default_threads_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INRKIT_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("INRKIT_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert default_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    for cores, want in ((1, 1), (2, 2), (4, 4), (16, 8), (64, 8)):
        monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert default_threads() == want


def test_threads_is_applied_before_the_command_and_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = cli.set_threads

    def record(n: int) -> None:
        seen.append(n)
        real(n)

    monkeypatch.setattr(cli, "set_threads", record)
    before = torch.get_num_threads()
    assert main(["synth", "sin-radial", "-o", str(tmp_path / "f.npy"), "--size", "8", "--threads", "2"]) == 0
    assert seen == [2] and torch.get_num_threads() == before
    monkeypatch.setenv("INRKIT_THREADS", "1")
    assert main(["synth", "sin-radial", "-o", str(tmp_path / "g.npy"), "--size", "8"]) == 0
    assert seen == [2, 1]


def test_threads_also_limits_numpy_blas_while_the_command_runs(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_info

    import inrkit.cli.core as core

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    seen: list[list[int]] = []
    real = core.synth_sin_radial

    @functools.wraps(real)
    def record(*args: Any, **kwargs: Any) -> Any:
        seen.append(blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "synth_sin_radial", record)
    before = blas_threads()
    assert main(["synth", "sin-radial", "-o", str(tmp_path / "f.npy"), "--size", "8", "--threads", "1"]) == 0
    assert seen and seen[0] and set(seen[0]) == {1}
    assert blas_threads() == before


@pytest.mark.parametrize("value", ["0", "2000"])
def test_threads_out_of_range_is_refused(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "sin-radial", "-o", str(tmp_path / "f.npy"), "--threads", value]) == 2
    assert "--threads" in capsys.readouterr().err


# ------------------------------------------------------------------ item 4: progress
def test_compress_search_with_finetune_shows_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from inrkit.compress.encode.api import CompressConfig, compress_to_target
    from inrkit.signals import GridSignal

    y, x = np.mgrid[0:16, 0:16] / 8.0
    signal = GridSignal(np.sin(x + y)[..., None].astype(np.float32), kind="image")
    model = siren(2, 1, [16, 16], generator=torch.Generator().manual_seed(0))
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    res = compress_to_target(model, signal, CompressConfig("sinr", target_bytes=400, finetune_steps=3, progress=True,
                                                           sparsity_grid=(0.1, 0.2, 0.3), bits_grid=(6,)))
    text = err.getvalue()
    assert "compress (sinr)" in text and "fit" in text and res.data
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    compress_to_target(model, signal, CompressConfig("sinr", target_bytes=400, finetune_steps=3, progress=False,
                                                     sparsity_grid=(0.1, 0.2), bits_grid=(6,)))
    assert quiet.getvalue() == ""  # progress=False is quiet


def test_nerf_evaluation_shows_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from inrkit.nerf import TrainConfig, evaluate_nerf, generate_scene, load_blender

    scene = load_blender(generate_scene(tmp_path / "s", size=8, views=2, test_views=2, seed=0))
    model = NeRFMLP(NeRFConfig.sized(8, 2, pos_freqs=2, dir_freqs=1), seed=0)
    capsys.readouterr()
    evaluate_nerf(model, scene, TrainConfig(n_samples=4, n_importance=0, progress=True))
    assert "evaluate 2 test views" in capsys.readouterr().err
    evaluate_nerf(model, scene, TrainConfig(n_samples=4, n_importance=0, progress=False))
    assert capsys.readouterr().err == ""


def test_large_model_evaluation_shows_progress_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an SDF or volume render runs (predict over a grid) shows a bar past PREDICT_BAR_POINTS."""
    import inrkit.signals.base as base

    model = siren(3, 1, [8], generator=torch.Generator().manual_seed(0))
    coords = base.grid_coords([8, 8, 8])
    monkeypatch.setattr(base, "PREDICT_BAR_POINTS", 100)
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    out = base.predict(model, coords, batch=64)
    assert out.shape == (512, 1) and "evaluate model" in err.getvalue()
    small = _Terminal()
    monkeypatch.setattr(sys, "stderr", small)
    base.predict(model, coords[:50])
    assert small.getvalue() == ""


# ------------------------------------------------------------------ item 6
def test_nerf_prune_refuses_a_width_that_prunes_nothing(nerf_file: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from inrkit.errors import InvalidInputError
    from inrkit.nerf import prune_nerf

    for width in ("16", "64"):
        assert main(["nerf-prune", str(nerf_file), "-o", str(tmp_path / "p.safetensors"), "--width", width]) == 2
        err = capsys.readouterr().err
        assert "--width" in err and "not smaller" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.safetensors").exists()
    with pytest.raises(InvalidInputError, match="not smaller"):
        prune_nerf(NeRFMLP(NeRFConfig.sized(16, 2), seed=0), "w_out", 16)
    assert main(["nerf-prune", str(nerf_file), "-o", str(tmp_path / "p.safetensors"), "--width", "8",
                 "--method", "w_out", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] < report["params_before"]


def test_info_reads_nerf_files(nerf_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(nerf_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["type"] == "nerf" and info["widths"]["trunk.0"] == 16 and info["params"] > 0


def test_render_size_zero_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.safetensors"
    save_model(siren(2, 1, [8]), model, signal={"kind": "image", "shape": [8, 8], "channels": 1})
    for size in ("0,0", "0,8", "8,0"):
        assert main(["render", str(model), "-o", str(tmp_path / "r.png"), "--size", size]) == 2
        assert "--size" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()


def test_every_help_shows_its_defaults() -> None:
    """Every optional flag's help states its default ('(default: ...)' or, for a switch, 'turn off')."""
    missing = []
    for path, parser in leaf_commands():
        for action in parser._actions:
            if (not action.option_strings or action.required
                    or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
                continue
            text = action.help or ""
            if "(default" not in text and "turn off" not in text:
                missing.append(f"{' '.join(path)} {action.option_strings[-1]}")
    assert not missing, missing


@pytest.mark.parametrize("arch", ["relu", "tanh"])
def test_fit_plain_mlps_from_the_cli(arch: str, image: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"{arch}.safetensors"
    assert main(["fit", str(image), "-o", str(out), "--arch", arch, "--hidden", "16x2", "--steps", "5",
                 "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert json.dumps(info).count(arch) >= 1
