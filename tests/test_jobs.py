"""The job layer and ``inrkit fit-many``: in-process runs, resume, failures, series, Ray (local, small)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit.api import ModelSpec, fit_file
from inrkit.cli import main
from inrkit.jobs import JobOptions, expand_inputs, make_batches, run_job
from inrkit.models import load_model
from inrkit.runner import COLUMNS, SUMMARY_KEYS
from inrkit.train import FitConfig

SPEC = ModelSpec(hidden=(8, 8))
# fp32: with precision "auto" a single CPU fit may train in bfloat16 while the batched fit is float32
CONFIG = FitConfig(steps=15, progress=False, precision="fp32")
# batched vs single fits run the same float32 arithmetic in another arrangement: weights agree to
# ATOL (measured: ~1e-7 after 15 steps); Ray vs in-process run the same code: also checked to ATOL
ATOL = 1e-5


def _images(folder: Path, n: int = 3, size: int = 12, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _weights(path: Path) -> list[torch.Tensor]:
    model, _ = load_model(path)
    return [p.detach().clone() for p in model.parameters()]


def _close(a: Path, b: Path, atol: float = ATOL) -> bool:
    return all(torch.allclose(x, y, atol=atol, rtol=0) for x, y in zip(_weights(a), _weights(b), strict=True))


def test_in_process_matches_single_fits_and_format(tmp_path: Path) -> None:
    """Each item is fitted as ``inrkit fit ITEM`` would be: same weights (ATOL), same header layout."""
    paths = _images(tmp_path / "in") + _images(tmp_path / "in2", n=1, size=10, seed=1)  # two shapes
    summary = run_job([tmp_path / "in", paths[-1]], tmp_path / "out", SPEC, CONFIG, job=JobOptions(batch=2))
    totals = summary["totals"]
    assert (summary["command"], totals["inputs"], totals["ok"], totals["failed"]) == ("fit-many", 4, 4, 0)
    assert tuple(summary) == SUMMARY_KEYS and all(set(COLUMNS) <= set(r) for r in summary["inputs"])
    assert len(make_batches(expand_inputs([tmp_path / "in", paths[-1]]), 2)) == 3  # 2 + 1 of 12x12, 1 of 10x10
    for path in paths[:1] + paths[-1:]:
        single = tmp_path / f"single-{path.stem}.safetensors"
        fit_file(path, single, SPEC, CONFIG)
        many = next(Path(r["output"]) for r in summary["inputs"] if r["input"] == str(path))
        assert _close(single, many)
        (_, h1), (_, h2) = load_model(single), load_model(many)
        assert h1.keys() == h2.keys() and h1["signal"] == h2["signal"]
        assert h1["extra"].keys() == h2["extra"].keys() and h1["extra"]["config"] == h2["extra"]["config"]
    rows = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["ok"] * 4 and all(float(r["psnr"]) > 0 for r in rows)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["totals"]["ok"] == 4


def test_resume_redoes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _images(tmp_path / "in")
    run_job([tmp_path / "in"], tmp_path / "out", SPEC, CONFIG)
    outputs = sorted((tmp_path / "out").glob("*.safetensors"))
    stamps = [p.stat().st_mtime_ns for p in outputs]
    import inrkit.jobs as jobs

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished item was fitted again")

    monkeypatch.setattr(jobs, "run_batch", refuse)
    again = run_job([tmp_path / "in"], tmp_path / "out", SPEC, CONFIG)
    assert (again["totals"]["skipped"], again["totals"]["ok"]) == (3, 0)
    assert [p.stat().st_mtime_ns for p in outputs] == stamps
    assert all(r["psnr"] is not None for r in again["inputs"])  # numbers carried from the last summary
    (tmp_path / "out" / "summary.json").unlink()  # without a summary the models' headers still count
    bare = run_job([tmp_path / "in"], tmp_path / "out", SPEC, CONFIG)
    assert bare["totals"]["skipped"] == 3 and all(r["sha256"] for r in bare["inputs"])
    monkeypatch.undo()
    outputs[0].write_bytes(outputs[0].read_bytes()[:100])  # an interrupted/corrupt output is redone
    outputs[1].unlink()
    third = run_job([tmp_path / "in"], tmp_path / "out", SPEC, CONFIG)
    assert (third["totals"]["ok"], third["totals"]["skipped"]) == (2, 1)
    changed = run_job([tmp_path / "in"], tmp_path / "out", SPEC, FitConfig(steps=5, progress=False))
    assert changed["totals"]["ok"] == 3  # other settings: nothing counts as done


def test_interrupted_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt after the first batch keeps its outputs and the summary; the re-run fits only the rest."""
    import inrkit.jobs as jobs

    _images(tmp_path / "in", n=4)
    real, calls = jobs.run_batch, []

    def interrupted(batch: Any, *args: Any) -> Any:
        calls.append([i.name for i in batch])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(batch, *args)

    monkeypatch.setattr(jobs, "run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_job([tmp_path / "in"], tmp_path / "out", SPEC, CONFIG, job=JobOptions(batch=2))
    first = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (first["totals"]["ok"], first["totals"]["unfinished"]) == (2, 2)
    calls.clear()
    again = run_job([tmp_path / "in"], tmp_path / "out", SPEC, CONFIG, job=JobOptions(batch=2))
    assert calls == [["img2", "img3"]] and (again["totals"]["skipped"], again["totals"]["ok"]) == (2, 2)


def test_corrupt_input_among_good_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _images(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    code = main(["fit-many", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--hidden", "8x2",
                 "--steps", "10", "--stack", "4", "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "broken" in err
    assert (summary["totals"]["ok"], summary["totals"]["failed"]) == (3, 1)
    failed = [r for r in summary["inputs"] if r["status"] == "failed"]
    assert failed[0]["name"] == "broken" and failed[0]["error"]
    assert len(list((tmp_path / "out").glob("*.safetensors"))) == 3


def test_series_manifest_and_glob(tmp_path: Path) -> None:
    series = tmp_path / "series"
    series.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(series / f"t{i}.npy", rng.random((4, 4, 4)).astype(np.float32))
    (series / "manifest.json").write_text(json.dumps({"format": "inrkit-series", "files": ["t0.npy", "t1.npy"]}))
    _images(tmp_path / "a", n=1)
    _images(tmp_path / "b", n=1)
    items = expand_inputs([series, str(tmp_path / "*" / "img*.png")])
    assert [i.name for i in items] == ["t0", "t1", "img0", "img0-2"]
    summary = run_job([series / "manifest.json"], tmp_path / "out", ModelSpec(hidden=(4,)),
                      FitConfig(steps=3, progress=False))
    assert summary["totals"]["ok"] == 2


@pytest.mark.parametrize("argv, name", [
    (["--batch", "0"], "--batch"),
    (["--batch", "nan"], "--batch"),
    (["-o", "/proc/inrkit-nope/out"], "/proc/inrkit-nope/out"),
    (["--ray-address", " "], "ray-address"),
])
def test_cli_refuses_before_work(argv: list[str], name: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    paths = _images(tmp_path / "in", n=1)
    code = main(["fit-many", str(paths[0]), "-o", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and name in err, err
    assert not (tmp_path / "out").exists()


def test_ray_missing_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    paths = _images(tmp_path / "in", n=1)
    assert main(["fit-many", str(paths[0]), "-o", str(tmp_path / "out"), "--ray"]) == 2
    assert "pip install" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_ray_local_matches_in_process(tmp_path: Path) -> None:
    """The same job on a local Ray (1 CPU) gives the same models as in-process (ATOL; see the note)."""
    try:
        import ray
    except ImportError:
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    _images(tmp_path / "in", n=3)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    local = run_job([tmp_path / "in"], tmp_path / "local", SPEC, CONFIG, job=JobOptions(batch=2))
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_job([tmp_path / "in"], tmp_path / "ray", SPEC, CONFIG, job=JobOptions(batch=2, ray=True))
    finally:
        ray.shutdown()
    assert (remote["totals"]["ok"], remote["totals"]["failed"], remote["run"]["ray"]) == (3, 1, True)
    assert remote["run"]["ray_address"] is None and remote["run"]["ray_startup_seconds"] >= 0
    assert "ray_address" not in local["run"]
    for a, b in zip(local["inputs"], remote["inputs"], strict=True):
        assert a["name"] == b["name"] and a["status"] == b["status"]
        if a["status"] == "ok":
            assert _close(Path(a["output"]), Path(b["output"]))
