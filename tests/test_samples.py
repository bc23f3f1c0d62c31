"""``inrkit sample``: every sample writes and verifies, a damaged bundled file is refused, outputs are
checked before any work, and the written photo loads as a signal."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import inrkit.samples as samples
from inrkit.cli import main
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.samples import SAMPLES, write_sample
from inrkit.signals import load_signal

SHARED_SOURCES = {"kodim23": "kodak/kodim23.png", "kodim05": "kodak/kodim05.png",
                  "hydrogen": "volumes/hydrogen.vti", "ironprot": "volumes/ironProt.vtk", "bunny": "meshes/bunny.ply"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_sample_writes_and_verifies(name: str, tmp_path: Path) -> None:
    sample = SAMPLES[name]
    out = tmp_path / "sub" / sample.filename  # a missing parent folder is created
    info = write_sample(name, out)
    assert info["sample"] == name and Path(info["path"]) == out and info["kind"] == sample.kind
    if sample.folder:
        files = [p for p in out.rglob("*") if p.is_file()]
        assert info["files"] == len(files) > 1 and info["bytes"] == sum(p.stat().st_size for p in files)
    else:
        assert out.is_file() and info["bytes"] == out.stat().st_size and info["sha256"] == _sha(out)
        if sample.written_sha256:
            assert info["sha256"] == sample.written_sha256
        elif not sample.generated:
            assert info["sha256"] == sample.sha256  # bundled as is
    if not sample.generated:
        assert info["bytes"] == sample.size
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "a temporary file was left behind"


@pytest.mark.parametrize("name", sorted(SHARED_SOURCES))
def test_bundled_files_are_the_shared_originals(name: str, tmp_path: Path, shared_data: Path) -> None:
    out = write_sample(name, tmp_path / SAMPLES[name].filename)["path"]
    assert _sha(Path(out)) == _sha(shared_data / SHARED_SOURCES[name])


def test_lego_scene_and_series_folders_are_usable(tmp_path: Path) -> None:
    write_sample("lego", tmp_path / "lego")
    for split, count in (("train", 90), ("test", 10), ("val", 10)):
        frames = json.loads((tmp_path / "lego" / f"transforms_{split}.json").read_text())["frames"]
        assert len(frames) == count
    assert "Heinzelnisse" in (tmp_path / "lego" / "ATTRIBUTION.txt").read_text()
    write_sample("vortex", tmp_path / "series")
    manifest = json.loads((tmp_path / "series" / "manifest.json").read_text())
    assert manifest["dims"] == [32, 32, 32] and len(manifest["files"]) == 20


def test_kodak_photo_loads_as_a_signal(tmp_path: Path) -> None:
    signal = load_signal(write_sample("kodim23", tmp_path / "kodim23.png")["path"])
    assert signal.kind == "image" and tuple(signal.metadata()["shape"][:2]) == (512, 768)
    crop = load_signal(write_sample("kodim05-crop", tmp_path / "crop.png")["path"])
    full = load_signal(write_sample("kodim05", tmp_path / "kodim05.png")["path"], crop=samples.CROP)
    assert np.array_equal(crop.metadata()["shape"], full.metadata()["shape"])


def test_weight_list_sample_imports_as_a_model(tmp_path: Path) -> None:
    from inrkit.models import load_model

    model, _ = load_model(write_sample("siren-weights", tmp_path / "weights.npz")["path"])
    assert model.widths == [2, 32, 32, 1]


@pytest.mark.parametrize("name", ["kodim23", "bunny", "lego"])
def test_damaged_bundled_file_is_refused(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = samples._read_bundled

    def damaged(file: str) -> bytes:
        data = bytearray(real(file))
        data[len(data) // 2] ^= 0xFF
        return bytes(data)

    monkeypatch.setattr(samples, "_read_bundled", damaged)
    out = tmp_path / SAMPLES[name].filename
    with pytest.raises(InvalidFileError, match=r"sampledata/.* is damaged: SHA-256 .*\(reinstall inrkit\)"):
        write_sample(name, out)
    assert not list(tmp_path.iterdir()), "nothing is written from a damaged file"


def test_damaged_decompressed_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dataclasses.replace(SAMPLES["hydrogen"], written_sha256="0" * 64)
    monkeypatch.setitem(SAMPLES, "hydrogen", wrong)
    with pytest.raises(InvalidFileError, match="decompresses to SHA-256"):
        write_sample("hydrogen", tmp_path / "hydrogen.vti")
    assert not list(tmp_path.iterdir())


def test_missing_bundled_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SAMPLES, "kodim23", dataclasses.replace(SAMPLES["kodim23"], bundled="nope.png"))
    with pytest.raises(InvalidFileError, match="sampledata/nope.png is missing"):
        write_sample("kodim23", tmp_path / "kodim23.png")


def _no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(file: str) -> bytes:
        raise AssertionError("the bundled data was read before the output was checked")

    monkeypatch.setattr(samples, "_read_bundled", fail)


@pytest.mark.parametrize("argv, says", [
    (["sample", "kodim23", "-o", "{tmp}/kodim23.vti"], "must end with .png"),
    (["sample", "bunny", "-o", "{tmp}/bunny.obj"], "must end with .ply"),
    (["sample", "hydrogen", "-o", "{tmp}/folder"], "must end with .vti"),
    (["sample", "lego", "-o", "{tmp}/full"], "is not empty"),
    (["sample", "lego", "-o", "{tmp}/afile.png"], "is not a folder"),
    (["sample", "nosuch", "-o", "{tmp}/x.png"], "unknown sample 'nosuch'"),
    (["sample", "-o", "{tmp}/x.png"], "needs a sample NAME"),
    (["sample", "kodim23", "-o", "{tmp}/afile.png/x.png"], "afile.png"),
])
def test_bad_output_is_refused_before_work(argv: list[str], says: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    (tmp_path / "afile.png").write_text("x")
    _no_work(monkeypatch)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0], err
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.png", "full"]


def test_cli_writes_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "ironprot", "--json"]) == 0  # default -o: the sample's usual name
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == "ironProt.vtk" and _sha(tmp_path / "ironProt.vtk") == SAMPLES["ironprot"].written_sha256
    assert main(["sample", "--list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in listing["samples"]] == list(SAMPLES)
    assert all(s["source"] and s["licence"] and s["bytes"] > 0 for s in listing["samples"])
    assert 3e6 < listing["bundled_bytes"] < 4e6
    assert main(["sample"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in SAMPLES) and "CC-BY" in text and "bundled with inrkit" in text


def test_existing_empty_folder_and_file_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "lego").mkdir()
    write_sample("lego", tmp_path / "lego")
    assert (tmp_path / "lego" / "transforms_train.json").is_file()
    (tmp_path / "weights.npz").write_bytes(b"old")
    write_sample("siren-weights", tmp_path / "weights.npz")
    assert np.load(tmp_path / "weights.npz")["W0"].shape == (32, 2)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="choose from kodim23, kodim05"):
        samples.get_sample("kodim99")
