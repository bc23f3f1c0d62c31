"""Volume formats read through VTK: MetaImage, NRRD, NIfTI, SLC, TIFF stacks and slice folders, DICOM series.

Each format is written here (VTK's writers; Pillow for TIFF; by hand where VTK has no writer: NRRD,
SLC, a minimal uncompressed DICOM series), read back with
values, origin and spacing checked, and fitted through ``inrkit fit``. Crafted headers asking for huge
grids, decompression bombs, truncated data and escaping data-file paths are refused before VTK
allocates (measured in a forked child: CPU time and peak memory bounded), and a missing VTK gives a
one-line error with the install hint.
"""
from __future__ import annotations

import builtins
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vtkmodules.vtkIOImage")

from test_fuzz_readers import crafted, fuzz, mutated  # noqa: E402  (the forked, limited runners of the reader fuzz tests)

from inrkit.cli import main  # noqa: E402
from inrkit.errors import InvalidFileError  # noqa: E402
from inrkit.models import load_model  # noqa: E402
from inrkit.signals import load_signal  # noqa: E402
from inrkit.signals.vtkformats import read_vtk_volume  # noqa: E402

ORIGIN, SPACING = (1.0, -2.0, 3.0), (2.0, 3.0, 4.0)
SHAPE = (12, 11, 10)  # x, y, z: every axis over 9 samples (VTK's NRRD reader takes <= 9 as components)


def volume(dtype: str = "int16") -> np.ndarray:
    """A smooth ``[x, y, z]`` test volume with distinct values along every axis."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    return (x + 13 * y + 151 * z).astype(dtype)


def vtk_image(values: np.ndarray, origin=ORIGIN, spacing=SPACING):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    img = vtkImageData()
    img.SetDimensions(*values.shape)
    img.SetOrigin(*origin)
    img.SetSpacing(*spacing)
    img.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(values.transpose()).ravel(), deep=True))
    return img


def write_with(writer_name: str, path: Path, values: np.ndarray, **options) -> Path:
    import vtkmodules.vtkIOImage as io_image

    writer = getattr(io_image, writer_name)()
    writer.SetFileName(str(path))
    writer.SetInputData(vtk_image(values))
    for key, value in options.items():
        getattr(writer, key)(value)
    writer.Write()
    return path


NRRD_HEAD = ("NRRD0004\ntype: short\ndimension: 3\nsizes: {sizes}\nspace: right-anterior-superior\n"
             "space directions: (2,0,0) (0,3,0) (0,0,4)\nspace origin: (1,-2,3)\nendian: little\nencoding: {enc}\n")


def write_nrrd(path: Path, values: np.ndarray, encoding: str = "raw", detached: bool = False,
               sizes: str | None = None, data_file: str | None = None) -> Path:
    data = np.ascontiguousarray(values.astype("<i2").transpose()).tobytes()
    head = NRRD_HEAD.format(sizes=sizes or " ".join(map(str, values.shape)), enc=encoding)
    payload = gzip.compress(data) if encoding == "gzip" else data
    if detached or data_file:
        name = data_file or path.with_suffix(".raw").name
        if data_file is None:
            (path.parent / name).write_bytes(payload)
        path.write_text(head + f"data file: {name}\n\n")
    else:
        path.write_bytes(head.encode() + b"\n" + payload)
    return path


def write_slc(path: Path, values: np.ndarray, rle: bool = False, dims: tuple[int, ...] | None = None) -> Path:
    """An SLC file (8-bit): header, a 2x2 icon, slices raw or run-length encoded."""
    nx, ny, nz = dims or values.shape
    head = f"11111\n{nx} {ny} {nz} 8\n{SPACING[0]} {SPACING[1]} {SPACING[2]}\n0 0 0\n{int(rle)}\n2 2 X".encode()
    body = b""
    for z in range(values.shape[2]):
        plane = np.ascontiguousarray(values[:, :, z].astype(np.uint8).transpose()).tobytes()
        if rle:
            runs = b"".join(bytes([0x80 | len(plane[i:i + 100])]) + plane[i:i + 100] for i in range(0, len(plane), 100))
            body += f"{len(runs) + 1} X".encode() + runs + b"\x00"
        else:
            body += plane
    path.write_bytes(head + bytes(12) + body)
    return path


def _pages(values: np.ndarray) -> list:
    """16-bit greyscale TIFF pages (Pillow): page z, row y, column x."""
    from PIL import Image

    return [Image.fromarray(np.ascontiguousarray(values[:, :, z].T.astype(np.uint16))) for z in range(values.shape[2])]


def write_tiff(path: Path, values: np.ndarray) -> Path:
    first, *rest = _pages(values)
    first.save(path, format="TIFF", save_all=True, append_images=rest)
    return path


def write_tiff_folder(folder: Path, values: np.ndarray) -> Path:
    folder.mkdir()
    for z, page in enumerate(_pages(values)):
        page.save(folder / f"slice{z:03d}.tif", format="TIFF")
    return folder


def _element(group: int, elem: int, vr: str, value: bytes) -> bytes:
    """One explicit-VR little-endian DICOM data element."""
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    if vr in ("OB", "OW"):
        return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def _ds(*values: float) -> bytes:
    return "\\".join(repr(float(v)) for v in values).encode()


def dicom_slice(plane: np.ndarray, z: int) -> bytes:
    """A minimal DICOM file (explicit VR little endian, 16-bit signed): slice ``z`` of a series, x the column."""
    meta = _element(0x0002, 0x0010, "UI", b"1.2.840.10008.1.2.1")
    head = b"\0" * 128 + b"DICM" + _element(0x0002, 0x0000, "UL", struct.pack("<I", len(meta))) + meta
    us = lambda v: struct.pack("<H", v)  # noqa: E731
    return head + b"".join([
        _element(0x0008, 0x0060, "CS", b"CT"),
        _element(0x0018, 0x0050, "DS", _ds(SPACING[2])),
        _element(0x0020, 0x000E, "UI", b"1.2.3.4"),
        _element(0x0020, 0x0013, "IS", str(z + 1).encode()),
        _element(0x0020, 0x0032, "DS", _ds(ORIGIN[0], ORIGIN[1], ORIGIN[2] + z * SPACING[2])),
        _element(0x0020, 0x0037, "DS", _ds(1, 0, 0, 0, 1, 0)),
        _element(0x0028, 0x0002, "US", us(1)),
        _element(0x0028, 0x0004, "CS", b"MONOCHROME2"),
        _element(0x0028, 0x0010, "US", us(plane.shape[1])),
        _element(0x0028, 0x0011, "US", us(plane.shape[0])),
        _element(0x0028, 0x0030, "DS", _ds(SPACING[1], SPACING[0])),
        _element(0x0028, 0x0100, "US", us(16)),
        _element(0x0028, 0x0101, "US", us(16)),
        _element(0x0028, 0x0102, "US", us(15)),
        _element(0x0028, 0x0103, "US", us(1)),
        _element(0x0028, 0x1052, "DS", _ds(-1000)),  # RescaleIntercept: stored + (-1000) = physical
        _element(0x0028, 0x1053, "DS", _ds(1)),  # RescaleSlope
        _element(0x7FE0, 0x0010, "OW", np.ascontiguousarray(plane.T.astype("<i2")).tobytes()),
    ])


def write_dicom_folder(folder: Path, values: np.ndarray, cut: int = 0) -> Path:
    """A DICOM series, one file per z slice (``cut`` bytes of pixel data missing from each)."""
    folder.mkdir()
    for z in range(values.shape[2]):
        blob = dicom_slice(values[:, :, z], z)
        (folder / f"IM{z:04d}.dcm").write_bytes(blob[: len(blob) - cut])
    return folder


CASES = {
    "mhd": lambda p: write_with("vtkMetaImageWriter", p / "v.mhd", volume(), SetCompression=False),
    "mha-zlib": lambda p: write_with("vtkMetaImageWriter", p / "v.mha", volume(), SetCompression=True),
    "nii": lambda p: write_with("vtkNIFTIImageWriter", p / "v.nii", volume()),
    "nii.gz": lambda p: write_with("vtkNIFTIImageWriter", p / "v.nii.gz", volume()),
    "nrrd": lambda p: write_nrrd(p / "v.nrrd", volume()),
    "nrrd-gzip": lambda p: write_nrrd(p / "v.nrrd", volume(), "gzip"),
    "nhdr": lambda p: write_nrrd(p / "v.nhdr", volume(), detached=True),
    "slc": lambda p: write_slc(p / "v.slc", volume("uint8") % 251),
    "slc-rle": lambda p: write_slc(p / "v.slc", volume("uint8") % 251, rle=True),
    "tif": lambda p: write_tiff(p / "v.tif", volume()),
    "tif-folder": lambda p: write_tiff_folder(p / "slices", volume()),
    "dicom-folder": lambda p: write_dicom_folder(p / "series", volume()),
}


def expected(case: str) -> tuple[np.ndarray, tuple, tuple]:
    """Values, origin and spacing a case must read back as (TIFF: index space; x the column, y the row)."""
    if case.startswith("slc"):
        return (volume("uint8") % 251).astype(np.float32), (0.0, 0.0, 0.0), SPACING
    if case.startswith("dicom"):  # VTK's DICOM reader: rows and slices reversed, origin not given
        return volume()[:, ::-1, ::-1].astype(np.float32) - 1000, (0.0, 0.0, 0.0), SPACING
    if case.startswith("tif"):
        return volume().astype(np.float32), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return volume().astype(np.float32), ORIGIN, SPACING


@pytest.mark.parametrize("case", sorted(CASES))
def test_read_values_and_frame(tmp_path, case):
    values, frame = read_vtk_volume(CASES[case](tmp_path))
    want, origin, spacing = expected(case)
    assert values.dtype == np.float32 and values.shape == SHAPE
    np.testing.assert_array_equal(values, want)
    np.testing.assert_allclose(frame.origin, origin)
    np.testing.assert_allclose(frame.spacing, spacing, rtol=1e-6)


@pytest.mark.parametrize("case", ["mha-zlib", "nii.gz", "nrrd-gzip", "slc-rle", "tif-folder", "dicom-folder"])
def test_fit_through_cli(tmp_path, case, capsys):
    source = CASES[case](tmp_path)
    out = tmp_path / "m.safetensors"
    assert main(["fit", str(source), "-o", str(out), "--hidden", "16x2", "--steps", "5", "--no-progress",
                 "--json"]) == 0
    _, header = load_model(out)
    signal = header["signal"]
    _, origin, spacing = expected(case)
    assert signal["kind"] == "volume" and signal["shape"] == list(SHAPE)
    np.testing.assert_allclose(signal["origin"], origin)
    np.testing.assert_allclose(signal["spacing"], spacing, rtol=1e-6)
    assert load_signal(source).shape == SHAPE  # the suffix (or folder) picks the volume kind


def test_fit_many_takes_double_suffixes(tmp_path, capsys):
    """A folder (or glob) of .nii.gz volumes: one model each, named without the whole suffix."""
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a", "b"):
        write_with("vtkNIFTIImageWriter", folder / f"{name}.nii.gz", volume())
    (folder / "notes.gz").write_bytes(gzip.compress(b"not a volume"))
    for source, out in ((folder, tmp_path / "many"), (str(folder / "*.nii.gz"), tmp_path / "globbed")):
        assert main(["fit-many", str(source), "-o", str(out), "--hidden", "8x1", "--steps", "2", "--no-progress",
                     "--json"]) == 0
        assert sorted(p.name for p in out.glob("*.safetensors")) == ["a.safetensors", "b.safetensors"]
        assert load_model(out / "a.safetensors")[1]["signal"]["spacing"] == list(SPACING)


def _nifti_with_dims(path: Path, dims: tuple[int, int, int]) -> Path:
    source = write_with("vtkNIFTIImageWriter", path, volume())
    blob = bytearray(source.read_bytes())
    blob[40:56] = struct.pack("<8h", 3, *dims, 1, 1, 1, 1)
    path.write_bytes(bytes(blob))
    return path


HOSTILE = {
    "mhd 100000^3 (header only)": (lambda p: (p / "h.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 100000 100000 100000\nElementType = MET_FLOAT\n"
        "ElementDataFile = LOCAL\n") and p / "h.mhd", "too large"),
    "nrrd 2000^3 gzip": (lambda p: write_nrrd(p / "h.nrrd", volume(), "gzip", sizes="2000 2000 2000"), "too large"),
    "nrrd gzip bomb 400^3 from 120 KB": (lambda p: _bomb(p / "b.nrrd"), "bytes of float32 per file byte"),
    "nii 30000^3": (lambda p: _nifti_with_dims(p / "h.nii", (30000, 30000, 30000)), "too large"),
    "nii.gz 30000^3": (lambda p: _gz(_nifti_with_dims(p / "h.nii", (30000, 30000, 30000)), p / "h.nii.gz"),
                       "too large"),
    "slc 5000x6000x7000": (lambda p: write_slc(p / "h.slc", volume("uint8"), dims=(5000, 6000, 7000)), "too large"),
    "slc run-length overflow": (lambda p: _slc_overflow(p / "o.slc"), "decodes"),
    "nrrd raw truncated": (lambda p: _truncate(write_nrrd(p / "t.nrrd", volume()), 100), "grid needs"),
    "mhd data truncated": (lambda p: _truncate_mhd(p), "grid needs"),
    "mha corrupt zlib stream": (lambda p: _corrupt_zlib_mha(p), "cannot read"),
    "dicom pixel data truncated": (lambda p: write_dicom_folder(p / "cut", volume(), cut=200), "a slice needs"),
    "dicom 60000x60000 slice": (lambda p: _dicom_huge(p / "huge"), "too large"),
    "nhdr data file outside": (lambda p: write_nrrd(p / "e.nhdr", volume(), data_file="../../etc/passwd"),
                               "outside"),
    "nhdr absolute data file": (lambda p: write_nrrd(p / "a.nhdr", volume(), data_file="/etc/passwd"),
                                "relative"),
}


def _bomb(path: Path) -> Path:
    head = NRRD_HEAD.format(sizes="400 400 400", enc="gzip")
    path.write_bytes(head.encode() + b"\n" + gzip.compress(bytes(400 ** 3 * 2), 9))
    return path


def _dicom_huge(folder: Path) -> Path:
    folder.mkdir()
    blob = dicom_slice(volume()[:, :, 0], 0)
    for tag in (b"\x28\x00\x10\x00US\x02\x00", b"\x28\x00\x11\x00US\x02\x00"):  # rows, columns
        at = blob.index(tag) + len(tag)
        blob = blob[:at] + struct.pack("<H", 60000) + blob[at + 2:]
    (folder / "IM0.dcm").write_bytes(blob)
    return folder


def _gz(source: Path, path: Path) -> Path:
    path.write_bytes(gzip.compress(source.read_bytes()))
    return path


def _truncate(path: Path, n: int) -> Path:
    path.write_bytes(path.read_bytes()[:-n])
    return path


def _corrupt_zlib_mha(folder: Path) -> Path:
    """A zlib .mha whose compressed stream is damaged (MetaImage's reader only prints the failure)."""
    path = CASES["mha-zlib"](folder)
    blob = bytearray(path.read_bytes())
    start = blob.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    for k in range(start + 2, len(blob), 7):
        blob[k] ^= 0x5A
    path.write_bytes(bytes(blob))
    return path


def _truncate_mhd(folder: Path) -> Path:
    header = write_with("vtkMetaImageWriter", folder / "t.mhd", volume(), SetCompression=False)
    _truncate(folder / "t.raw", 64)
    return header


def _slc_overflow(path: Path) -> Path:
    write_slc(path, volume("uint8"), rle=True)
    blob = bytearray(path.read_bytes())
    first = blob.index(b"X", blob.index(b"2 2 X") + 17) + 1  # the first run of slice 0
    blob[first] = 0xFF  # a 127-value literal run: beyond the slice's data
    path.write_bytes(bytes(blob))
    return path


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_headers_refused_before_allocating(tmp_path, name):
    make, message = HOSTILE[name]
    path = make(tmp_path)

    def load() -> None:  # in this process, so that the measurement sees all the work
        read_vtk_volume(path, isolate=False)

    result = crafted(f"vtk {name}", load)
    assert result["outcome"] == "InvalidFileError", result
    with pytest.raises(InvalidFileError, match=message):
        read_vtk_volume(path)  # the same refusal from the isolated reader


def test_fit_refuses_huge_header_with_exit_2(tmp_path, capsys):
    path = _nifti_with_dims(tmp_path / "h.nii", (30000, 30000, 30000))
    assert main(["fit", str(path), "-o", str(tmp_path / "m.safetensors"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inrkit: error:") and "too large" in err and "\n" not in err


def test_missing_vtk_gives_install_hint(tmp_path, monkeypatch, capsys):
    path = CASES["nii"](tmp_path)
    real_import = builtins.__import__

    def no_vtk(name, *args, **kwargs):
        if name.startswith("vtkmodules"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vtk)
    assert main(["fit", str(path), "-o", str(tmp_path / "m.safetensors"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'inrkit[viz]'" in err


def _tiff_claiming(path: Path, width: int, height: int) -> Path:
    """A 4x4 TIFF whose ImageWidth/ImageLength tags are patched to ``width`` x ``height``."""
    import tifffile

    tifffile.imwrite(path, np.zeros((4, 4), dtype=np.uint16))
    with tifffile.TiffFile(path) as tiff:
        tags = tiff.pages[0].tags
        spots = [(tags[name].valueoffset, tags[name].dtype) for name in ("ImageWidth", "ImageLength")]
    blob = bytearray(path.read_bytes())
    for (offset, kind), value in zip(spots, (width, height)):
        fmt = "<H" if int(kind) == 3 else "<I"
        blob[offset: offset + struct.calcsize(fmt)] = struct.pack(fmt, min(value, 65535 if fmt == "<H" else value))
    path.write_bytes(bytes(blob))
    return path


def test_tiff_without_vtk_and_bounded(tmp_path, monkeypatch):
    path = CASES["tif"](tmp_path)
    real_import = builtins.__import__

    def no_vtk(name, *args, **kwargs):
        if name.startswith("vtkmodules"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vtk)
    assert read_vtk_volume(path)[0].shape == SHAPE  # TIFF is read by tifffile
    huge = _tiff_claiming(tmp_path / "huge.tif", 60000, 60000)
    result = crafted("tiff 60000x60000 header", lambda: read_vtk_volume(huge))
    assert result["outcome"] == "InvalidFileError"
    with pytest.raises(InvalidFileError, match="too large|cannot read TIFF"):
        read_vtk_volume(huge)


def test_nifti_rescaled_to_physical_values(tmp_path):
    path = write_with("vtkNIFTIImageWriter", tmp_path / "s.nii", volume(), SetRescaleSlope=0.5,
                      SetRescaleIntercept=-3.0)
    np.testing.assert_allclose(read_vtk_volume(path)[0], volume() * 0.5 - 3.0)


def test_a_crash_of_vtk_is_contained(tmp_path, monkeypatch):
    """VTK runs in a forked child: a reader that dies by a signal (VTK's DICOM reader did, on 5 of 200
    mutated series) gives a one-line InvalidFileError here, and this process goes on."""
    import os
    import signal

    import inrkit.signals.vtkformats as vtkformats

    path = CASES["nii"](tmp_path)
    monkeypatch.setattr(vtkformats, "_read_with_vtk", lambda *_: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(InvalidFileError, match="crashed on this file") as info:
        read_vtk_volume(path)
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert read_vtk_volume(path, isolate=False)[0].shape == SHAPE


def test_vector_data_refused(tmp_path):
    path = tmp_path / "rgb.nrrd"
    path.write_bytes(NRRD_HEAD.replace("dimension: 3", "dimension: 4").format(sizes="3 12 11 10", enc="raw")
                     .replace("space directions: (2,0,0)", "space directions: none (2,0,0)").encode()
                     + b"\n" + bytes(3 * 12 * 11 * 10 * 2))
    with pytest.raises(InvalidFileError, match="only scalar volumes"):
        read_vtk_volume(path)


FUZZED = {  # format: (seed cases, the file to mutate, the name it is read under)
    "mha": (["mha-zlib"], "v.mha"), "mhd": (["mhd"], "v.mhd"), "nii": (["nii"], "v.nii"),
    "nii.gz": (["nii.gz"], "v.nii.gz"), "nrrd": (["nrrd", "nrrd-gzip"], "v.nrrd"), "slc": (["slc", "slc-rle"], "v.slc"),
    "tif": (["tif"], "v.tif"),
}


@pytest.mark.parametrize("fmt", sorted(FUZZED))
def test_fuzz_vtk_formats(tmp_path, fmt):
    """Mutated files of each format (flips, truncations, insertions, random bytes), each read in a limited
    forked child: read or refused with one line; a crash of VTK's C++ reader would kill the child."""
    cases, name = FUZZED[fmt]
    seeds = []
    for case in cases:
        folder = tmp_path / case
        folder.mkdir()
        seeds.append((CASES[case](folder).parent / name).read_bytes())
    if fmt == "mhd":  # the detached data beside the mutated header
        (tmp_path / "v.raw").write_bytes((tmp_path / "mhd" / "v.raw").read_bytes())
    target = tmp_path / name

    def run(data: bytes) -> None:
        target.write_bytes(data)
        read_vtk_volume(target)

    fuzz(f"vtk {fmt}", mutated(seeds), run, default=60)


def test_fuzz_dicom_series(tmp_path):
    """A DICOM series with one mutated slice file (VTK's reader runs in a child: a crash there is refused)."""
    folder = CASES["dicom-folder"](tmp_path)
    files = sorted(folder.iterdir())
    originals = [f.read_bytes() for f in files]

    def run(case: tuple[int, bytes]) -> None:
        index, data = case
        for f, blob in zip(files, originals):
            f.write_bytes(data if f == files[index % len(files)] else blob)
        read_vtk_volume(folder)

    from hypothesis import strategies as st

    fuzz("vtk dicom series", st.tuples(st.integers(0, 9), mutated(originals[:2])), run, default=40)
