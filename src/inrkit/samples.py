"""Sample inputs for the examples of the README and docs: ``inrkit sample NAME -o PATH``.

Every sample is either bundled with the package (``inrkit/sampledata/``, each file's SHA-256 pinned
here and checked before anything is written) or generated from a bundled file or a seeded generator.
Nothing is downloaded. Files are written atomically (a temporary file beside the target, then
``os.replace``); a folder sample is written into a temporary folder beside the target, then renamed.

    from inrkit.samples import SAMPLES, write_sample
    write_sample("kodim23", "kodim23.png")     # {'sample': 'kodim23', 'path': 'kodim23.png', 'bytes': 557596, ...}

Sources and licences: ``inrkit/sampledata/README.md`` (and :data:`SAMPLES`).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.utils import atomic_path, atomic_write

KODAK = ("Kodak Lossless True Color Image Suite (free to use), as distributed in the COIN repository "
         "(EmilienDupont/coin, MIT)")
KODAK_LICENCE = "free to use (Kodak); COIN repository MIT"
VTK = "VTK example data (Kitware)"
VTK_LICENCE = "BSD-style (VTK Data Copyright.txt, bundled as inrkit/sampledata/VTK-Copyright.txt)"
CROP = (128, 384, 256, 512)  # rows 128-383, columns 256-511: the 256x256 image the CPU examples use


@dataclass(frozen=True)
class Sample:
    """One sample input.

    Args:
        name: the name ``inrkit sample`` takes.
        filename: the file or folder name the docs write it to (the default of ``-o``).
        description: what it is.
        source: where it comes from.
        licence: its licence or terms of use.
        size: bytes written (for a generated sample: on this platform, as measured; a folder: all its files).
        bundled: the file under ``inrkit/sampledata/`` it is made from (``None``: generated from nothing).
        sha256: the SHA-256 of the bundled file (checked before anything is written).
        written_sha256: the SHA-256 of the file written (bundled single files: checked after decompressing).
        folder: the sample is a folder (``filename`` has no suffix to check).
        generated: made by code (from ``bundled`` when set) rather than copied.
    """

    name: str
    filename: str
    description: str
    source: str
    licence: str
    size: int
    bundled: str | None = None
    sha256: str | None = None
    written_sha256: str | None = None
    folder: bool = False
    generated: bool = False

    @property
    def suffix(self) -> str:
        """The file suffix the output must have (``""`` for a folder)."""
        if self.folder:
            return ""
        return Path(self.filename).suffix.lower()

    @property
    def kind(self) -> str:
        """``bundled`` (a copy of a bundled file) or ``generated``."""
        return "generated" if self.generated else "bundled"


SAMPLES: dict[str, Sample] = {s.name: s for s in (
    Sample("kodim23", "kodim23.png", "Kodak photo kodim23 (parrots), 768x512 RGB PNG", KODAK, KODAK_LICENCE,
           557596, "kodim23.png", "e3111a2fd4da24af15d6459ef9eacfe54106b38e27b4a21821b75c3f5d2d5baf"),
    Sample("kodim05", "kodim05.png", "Kodak photo kodim05 (motocross), 768x512 RGB PNG", KODAK, KODAK_LICENCE,
           785610, "kodim05.png", "10349e963c5c813d327852f82c1795fa4148d69fedffc4c589bee458e3ac3d53"),
    Sample("kodim05-crop", "kodim05-crop.png",
           "256x256 crop of kodim05 (rows 128-383, columns 256-511), the image of the CPU-sized examples",
           KODAK, KODAK_LICENCE, 147382, "kodim05.png",
           "10349e963c5c813d327852f82c1795fa4148d69fedffc4c589bee458e3ac3d53", generated=True),
    Sample("hydrogen", "hydrogen.vti", "hydrogen atom 3d orbital probability density, 64^3 float32, VTK XML ImageData",
           VTK, VTK_LICENCE, 298712, "hydrogen.vti.gz",
           "e7bfdd178ddf301c2629ec5d0fc93f04c67a1cbb4bcdb79bf06a0e0a06ec2ab0",
           "9cb09f8610163b03d80a4e95d5b67e89822f38d7559c64efb12b9235b02b8877"),
    Sample("ironprot", "ironProt.vtk", "iron protein, 68^3 uint8, legacy VTK structured points",
           VTK, VTK_LICENCE, 314642, "ironProt.vtk.gz",
           "7f882766bf01ea3bff28f3ef3b2d605513b9a79560167894b922e48db66ad079",
           "544f67d66dbb8b79e48053f131d614e225d0caa702fd3f690313312dd4119f79"),
    Sample("bunny", "bunny.ply", "Stanford bunny, 35,947 vertices, 69,451 triangles (open at the base), ASCII PLY",
           "Stanford 3D Scanning Repository (Stanford Computer Graphics Laboratory)",
           "research use; redistributed unchanged, free of charge, with acknowledgement of the source", 3033235,
           "bunny.ply.gz", "1dcbab172379ecdd987cb8b2922fef1db3d4a85a211328933bbe48b86753180d",
           "442bdd8f35bf107005424bbd60100358cd57fa4711640766a5802a17d58f98ad"),
    Sample("lego", "lego", "NeRF 'lego' scene, Blender format: 100 views at 100x100 RGBA (90 train, 10 test/val)",
           "NeRF synthetic dataset (Mildenhall et al. 2020), as redistributed in shouxieai/nerf (MIT); "
           "ATTRIBUTION.txt in the folder",
           "CC-BY 3.0 (Blender model 'lego' by Heinzelnisse)", 1228773, "lego_100.tar.gz",
           "4b5e4109d11701ce089afaf5e4c91dba0858587722827e1ad01b82b60cad8372", folder=True),
    Sample("vortex", "vortex", "volume series: 20 time steps of a 32^3 vortex flow advecting a scalar "
           "(inrkit synth vortex --size 32 --steps 20 --seed 0)", "generated by inrkit.meta.generate_series",
           "MIT (inrkit)", 2625143, folder=True, generated=True),
    Sample("siren-weights", "weights.npz", "a 2-32-32-1 SIREN as an .npz weight list (W0..W2, b0..b2, activations, "
           "omega0; random initialisation, seed 0): an INR trained elsewhere", "generated by inrkit.samples",
           "MIT (inrkit)", 6776, generated=True),
)}


def sample_names() -> list[str]:
    """The names :func:`write_sample` takes."""
    return list(SAMPLES)


def get_sample(name: str) -> Sample:
    """The :class:`Sample` called ``name`` (an :class:`InvalidInputError` listing the names otherwise)."""
    try:
        return SAMPLES[name]
    except KeyError:
        raise InvalidInputError(f"unknown sample {name!r}; choose from {', '.join(SAMPLES)}") from None


def list_samples() -> list[dict[str, Any]]:
    """One dict per sample: name, default file name, what, bytes written, source, licence, bundled/generated."""
    return [{"name": s.name, "file": s.filename, "what": s.description, "bytes": s.size, "source": s.source,
             "licence": s.licence, "kind": s.kind} for s in SAMPLES.values()]


def bundled_bytes() -> int:
    """Total size of the bundled sample files (what the package carries)."""
    names = {s.bundled for s in SAMPLES.values() if s.bundled}
    return sum(len(_read_bundled(n)) for n in sorted(names))


def _read_bundled(name: str) -> bytes:
    resource = resources.files("inrkit") / "sampledata" / name
    try:
        return resource.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise InvalidFileError(f"bundled sample file sampledata/{name} is missing from this installation of inrkit "
                               "(reinstall inrkit)") from None


def bundled_data(sample: Sample) -> bytes:
    """The bundled file behind ``sample``, its SHA-256 checked against the pinned one."""
    if sample.bundled is None:
        raise InvalidInputError(f"sample {sample.name!r} is generated, not bundled")
    data = _read_bundled(sample.bundled)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sample.sha256:
        raise InvalidFileError(f"bundled sample file sampledata/{sample.bundled} is damaged: SHA-256 {digest[:16]}... "
                               f"is not the pinned {str(sample.sha256)[:16]}... (reinstall inrkit)")
    return data


def check_sample_output(name: str, path: str | os.PathLike) -> Path:
    """Refuse (:class:`InvalidInputError`) an output ``path`` that sample ``name`` cannot be written to:
    a wrong suffix, a file where a folder goes, a non-empty existing folder, an existing folder where a file goes."""
    sample = get_sample(name)
    out = Path(path)
    if not os.fspath(path).strip():
        raise InvalidInputError("--output: empty path")
    if sample.folder:
        if out.exists() and not out.is_dir():
            raise InvalidInputError(f"--output: {out} exists and is not a folder (sample {name!r} is a folder)")
        if out.is_dir() and any(out.iterdir()):
            raise InvalidInputError(f"--output: folder {out} is not empty (sample {name!r} writes a new folder)")
        return out
    if not out.name.lower().endswith(sample.suffix):
        raise InvalidInputError(f"--output: {out} must end with {sample.suffix} (sample {name!r} is "
                                f"{sample.filename})")
    if out.is_dir():
        raise InvalidInputError(f"--output: {out} is a folder; name the {sample.suffix} file to write")
    return out


def write_sample(name: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write sample ``name`` to ``path`` (default: its usual file name in the current folder).

    The output is checked first (:func:`check_sample_output`), then the bundled file's SHA-256
    (an :class:`InvalidFileError` when it differs from the pinned one: the installation is damaged),
    then the sample is written atomically; a bundled single file's written SHA-256 is checked too.

    Args:
        name: a key of :data:`SAMPLES` (``inrkit sample --list``).
        path: the file or folder to write.

    Returns:
        ``{"sample", "path", "bytes", "sha256" (files), "files" (folders), "kind", "source", "licence"}``.
    """
    sample = get_sample(name)
    out = check_sample_output(name, sample.filename if path is None else path)
    data = bundled_data(sample) if sample.bundled else b""
    writer = _WRITERS.get(sample.name)
    if sample.folder:
        count = _write_folder(out, lambda tmp: _FOLDER_WRITERS[sample.name](data, tmp))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        extra: dict[str, Any] = {"files": count}
    else:
        if writer is not None:
            writer(data, out)
        else:
            payload = gzip.decompress(data) if sample.bundled and sample.bundled.endswith(".gz") else data
            _check_written(sample, payload)
            with atomic_write(out) as fh:
                fh.write(payload)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        size = out.stat().st_size
        extra = {"sha256": digest}
    return {"sample": sample.name, "path": str(out), "bytes": size, **extra, "kind": sample.kind,
            "source": sample.source, "licence": sample.licence}


def _check_written(sample: Sample, payload: bytes) -> None:
    if sample.written_sha256 is None:
        return
    digest = hashlib.sha256(payload).hexdigest()
    if digest != sample.written_sha256:
        raise InvalidFileError(f"bundled sample file sampledata/{sample.bundled} decompresses to SHA-256 "
                               f"{digest[:16]}..., not the pinned {sample.written_sha256[:16]}... (reinstall inrkit)")


def _write_folder(out: Path, fill: Callable[[Path], int]) -> int:
    """Fill a fresh temporary folder beside ``out``, then rename it to ``out`` (an empty ``out`` is replaced)."""
    from inrkit.utils import _umask

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; give it the usual permissions
        count = fill(tmp)
        if out.is_dir():
            out.rmdir()  # empty (checked before): replaced by the new folder
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


def _write_crop(data: bytes, out: Path) -> None:
    import numpy as np
    from PIL import Image

    top, bottom, left, right = CROP
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[top:bottom, left:right]
    with atomic_path(out) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def _write_weights(data: bytes, out: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    widths = [2, 32, 32, 1]
    arrays: dict[str, Any] = {"activations": np.array(["sine", "sine", "identity"]),
                              "omega0": np.array(30.0, np.float32)}
    for i in range(3):  # SIREN initialisation: U(-1/n, 1/n) first, U(-sqrt(6/n)/30, sqrt(6/n)/30) after
        bound = (1 / widths[i]) if i == 0 else np.sqrt(6 / widths[i]) / 30
        arrays[f"W{i}"] = rng.uniform(-bound, bound, (widths[i + 1], widths[i])).astype(np.float32)
        arrays[f"b{i}"] = np.zeros(widths[i + 1], np.float32)
    with atomic_write(out) as fh:
        np.savez(fh, **arrays)


def _extract_scene(data: bytes, tmp: Path) -> int:
    """Unpack the bundled scene archive (its SHA-256 already checked) into ``tmp``: regular files only."""
    count = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 2 or member.name.startswith("/") or ".." in parts:
                raise InvalidFileError(f"bundled scene archive: unexpected member {member.name!r}")
            target = tmp.joinpath(*parts[1:])  # drop the archive's top folder
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file
            with open(target, "wb") as fh:
                shutil.copyfileobj(source, fh)
            count += 1
    return count


def _generate_vortex(data: bytes, tmp: Path) -> int:
    from inrkit.meta import generate_series

    summary = generate_series("vortex", tmp, size=32, steps=20, seed=0, progress=False)
    return int(summary["members"]) + 1  # the members and manifest.json


_WRITERS: dict[str, Callable[[bytes, Path], None]] = {"kodim05-crop": _write_crop, "siren-weights": _write_weights}
_FOLDER_WRITERS: dict[str, Callable[[bytes, Path], int]] = {"lego": _extract_scene, "vortex": _generate_vortex}
