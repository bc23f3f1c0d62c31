"""Volume formats read through VTK's image readers (the optional ``viz`` extra: ``pip install 'inrkit[viz]'``).

| suffix | VTK reader | frame kept |
|---|---|---|
| ``.mhd``/``.mha`` (MetaImage) | ``vtkMetaImageReader`` | ``Offset``, ``ElementSpacing`` |
| ``.nrrd``/``.nhdr`` | ``vtkNrrdReader`` | ``space origin``, ``spacings``/``space directions`` lengths |
| ``.nii``/``.nii.gz`` (NIfTI) | ``vtkNIFTIImageReader`` | spacing; origin of an axis-aligned s/qform |
| ``.slc`` | ``vtkSLCReader`` | spacing |
| ``.tif``/``.tiff`` (multi-page stack), a folder of TIFF slices | ``tifffile`` (not VTK) | index space |
| a DICOM series folder | ``vtkDICOMImageReader`` | spacing (VTK's orientation: rows and slices reversed) |

NIfTI values are rescaled to physical units (``scl_slope``, ``scl_inter``), which VTK's NIfTI reader
leaves to the caller; its DICOM reader applies RescaleSlope/RescaleIntercept (e.g. Hounsfield units) itself.

Each reader is bounded like the others in :mod:`inrkit.signals.readers`: the header is read first
(``UpdateInformation``: extent, scalar type, components), and the grid is checked against
:data:`~inrkit.limits.MAX_GRID_VALUES`, the decode-ratio rule (over every file the volume is read
from) and, for uncompressed data, the size of the data file, all before ``Update()`` allocates.
Only scalar data is read; a VTK error while reading becomes an :class:`InvalidFileError`.
Volumes are returned as float32 arrays indexed ``[x, y, z]`` with size-1 axes dropped.

TIFF goes through ``tifffile`` (installed with scikit-image) instead: VTK's TIFF reader crashes the
process (SIGSEGV, SIGFPE) on some corrupt files, while tifffile parses the tags in Python and raises.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from inrkit.errors import InvalidFileError
from inrkit.limits import MAX_GRID_VALUES, MAX_SERIES_MEMBERS, MAX_TEXT_FILE_BYTES, check_decode, inside_folder
from inrkit.metrics import SAMPLE_DTYPE_NAMES
from inrkit.signals.frames import Frame
from inrkit.signals.readers import file_size

INSTALL_HINT = "pip install 'inrkit[viz]'"
SUFFIXES = (".mhd", ".mha", ".nrrd", ".nhdr", ".nii", ".nii.gz", ".slc", ".tif", ".tiff")
MAX_SLICE_FILES = MAX_SERIES_MEMBERS  # files of a DICOM or TIFF-slice folder (as members of a series)
HEADER_SCAN_BYTES = 1 << 16  # bytes of a MetaImage/NRRD text header looked at for the data file and encoding
TIFF_SUFFIXES = (".tif", ".tiff")
_ITEM_SIZE = {2: 1, 3: 1, 15: 1, 4: 2, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 4, 11: 8, 16: 8, 17: 8}  # VTK scalar types


def import_vtk() -> Any:
    """VTK (installed with pyvista); a one-line :class:`InvalidFileError` with the install hint when missing."""
    try:
        import vtkmodules.vtkCommonExecutionModel as execution
        import vtkmodules.vtkIOImage as io_image
    except ImportError:
        raise InvalidFileError(f"reading this volume format needs VTK: {INSTALL_HINT}") from None
    return io_image, execution


def is_slice_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder (a DICOM series or TIFF slices)."""
    return Path(path).is_dir()


def vtk_suffix(path: str | os.PathLike) -> str:
    """The format suffix of ``path`` (``.nii.gz`` counts as one), lower case."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


# ------------------------------------------------------------------ headers of the text formats
def _text_header(path: Path, stop: Callable[[str], bool]) -> tuple[dict[str, str], int]:
    """``key: value`` / ``key = value`` lines of a text header (the first HEADER_SCAN_BYTES bytes), lower-case
    keys, and the header's length in bytes.

    Reading stops after a blank line or after the line where ``stop(key)`` says (MetaImage's ``ElementDataFile``).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_SCAN_BYTES)
    except OSError as exc:
        raise InvalidFileError(f"{path}: cannot read ({exc})") from None
    fields: dict[str, str] = {}
    end = 0
    for raw in head.split(b"\n"):
        end = min(end + len(raw) + 1, len(head))
        line = raw.decode("latin-1").strip()
        if not line:
            break
        if line.startswith("#"):
            continue
        match = re.match(r"([^:=]+?)\s*(?::=|:|=)\s*(.*)", line)
        if match:
            key = match.group(1).strip().lower()
            fields.setdefault(key, match.group(2).strip())
            if stop(key):
                break
    return fields, end


def _data_file(header: Path, name: str, what: str) -> Path:
    """The one detached data file a header names (inside the header's folder); lists and patterns refused."""
    if name.split()[:1] == ["LIST"] or len(name.split()) > 1 or "%" in name:
        raise InvalidFileError(f"{header}: {what} split over several data files is not supported")
    return inside_folder(header.parent, name, str(header))


def _sources(path: Path, suffix: str) -> tuple[list[Path], bool, int]:
    """Every file the volume is read from (the data in the last), whether the data is stored uncompressed,
    and the bytes before the data in the last file (-1: the reader knows)."""
    if suffix in (".mhd", ".mha"):
        fields, end = _text_header(path, lambda key: key == "elementdatafile")
        if "elementdatafile" not in fields:
            raise InvalidFileError(f"{path}: not a MetaImage header (no ElementDataFile)")
        name = fields["elementdatafile"]
        files = [path] if name.upper() == "LOCAL" else [path, _data_file(path, name, "MetaImage data")]
        compressed = fields.get("compresseddata", "false").lower() in ("true", "1")
        return files, not compressed, end if len(files) == 1 else 0
    if suffix in (".nrrd", ".nhdr"):
        check_nrrd_header(path)
        fields, end = _text_header(path, lambda key: False)
        encoding = fields.get("encoding", "raw").lower()
        if encoding not in ("raw", "gzip", "gz"):
            raise InvalidFileError(f"{path}: NRRD encoding {encoding[:20]!r} is not supported (raw or gzip)")
        detached = fields.get("data file") or fields.get("datafile")
        files = [path] if detached is None else [path, _data_file(path, detached, "NRRD data")]
        return files, encoding == "raw", end if len(files) == 1 else 0
    return [path], suffix == ".nii", -1


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|NaN|NAN|inf|Inf|INF)"
_NRRD_VECTOR = re.compile(rf"\(\s*(?:{_NUMBER})(?:\s*,\s*(?:{_NUMBER})){{0,3}}\s*\)")
_NRRD_PER_AXIS = ("sizes", "spacings")


def check_nrrd_header(path: Path) -> None:
    """Check the fields of an NRRD header that VTK's reader trusts, before it reads them.

    The reader loops for ever on a header whose last line has no line end, and crashes on per-axis
    fields (``sizes``, ``spacings``) that disagree with the dimension in force (``dimension``, ``space``,
    ``space dimension``) or on malformed vectors; such headers are refused here.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_SCAN_BYTES)
    except OSError as exc:
        raise InvalidFileError(f"{path}: cannot read ({exc})") from None
    text = head.decode("latin-1")
    blank = text.find("\n\n")
    if "\0" in text[: blank if blank >= 0 else len(text)]:
        raise InvalidFileError(f"{path}: a NUL byte in the NRRD header")
    if blank < 0 and not (len(head) < HEADER_SCAN_BYTES and text.endswith("\n")):
        raise InvalidFileError(f"{path}: the NRRD header does not end with a blank line (within {HEADER_SCAN_BYTES} "
                               "bytes)")
    lines = text[: blank if blank >= 0 else len(text)].split("\n")
    if not re.fullmatch(r"NRRD000[1-5]\r?", lines[0]):
        raise InvalidFileError(f"{path}: not an NRRD file (magic {lines[0][:12]!r})")
    ndim, seen = 0, set()
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(": ")  # a field, as VTK splits it; else a key:=value pair
        if not sep:
            if ":=" not in line:
                raise InvalidFileError(f"{path}: bad NRRD header line {line[:60]!r}")
            continue
        value = value.strip()
        if key in ("dimension", "space dimension"):
            if not re.fullmatch(r"[1-4]", value):
                raise InvalidFileError(f"{path}: NRRD {key} {value[:20]!r} must be 1 to 4")
            ndim = int(value)
        elif key == "space":
            ndim = 3  # as VTK's reader does
        elif key in _NRRD_PER_AXIS:
            tokens = value.split()
            pattern = r"\d{1,10}" if key == "sizes" else _NUMBER
            if len(tokens) != ndim or not all(re.fullmatch(pattern, t) for t in tokens):
                raise InvalidFileError(f"{path}: NRRD {key} {value[:60]!r} must give {ndim} numbers (the dimension)")
        elif key == "space directions":
            tokens = value.split()
            if not 1 <= len(tokens) <= 4 or not all(t == "none" or _NRRD_VECTOR.fullmatch(t) for t in tokens):
                raise InvalidFileError(f"{path}: bad NRRD space directions {value[:60]!r}")
        elif key == "space origin" and not _NRRD_VECTOR.fullmatch(value):
            raise InvalidFileError(f"{path}: bad NRRD space origin {value[:60]!r}")
        seen.add(key)
    missing = [k for k in ("type", "dimension", "sizes") if k not in seen]
    if missing:
        raise InvalidFileError(f"{path}: the NRRD header lacks {', '.join(missing)}")


_SLC_HEAD = re.compile(rb"\s*11111\s+(\d{1,9})\s+(\d{1,9})\s+(\d{1,9})\s+\d{1,9}\s+(\S{1,40})\s+(\S{1,40})\s+"
                       rb"(\S{1,40})\s+-?\d{1,9}\s+-?\d{1,9}\s+-?\d{1,9}\s+(\d{1,9})\s*(\d{1,9})\s+(\d{1,9})\s*X")
_SLC_SLICE = re.compile(rb"\s*(\d{1,10})\s*X")


def check_slc(path: Path) -> None:
    """Walk an SLC file's structure before VTK reads it: header, icon, and every slice (run-length
    encoded slices decode to exactly one plane, with their end marker, inside their stated size).

    VTK's SLC reader trusts these sizes; checking them first keeps a crafted file from making it
    allocate or copy beyond the file and the grid.
    """
    size = file_size(path)
    with open(path, "rb") as fh:
        blob = fh.read(HEADER_SCAN_BYTES)
    match = _SLC_HEAD.match(blob, 0)
    if match is None:
        raise InvalidFileError(f"{path}: not an SLC file (bad header)")
    nx, ny, nz = (int(match.group(k)) for k in (1, 2, 3))
    compression, icon_w, icon_h = (int(match.group(k)) for k in (7, 8, 9))
    if min(nx, ny, nz) < 1 or nx * ny * nz > MAX_GRID_VALUES:
        raise InvalidFileError(f"{path}: SLC grid {(nx, ny, nz)} is empty or too large "
                               f"(at most {MAX_GRID_VALUES} values)")
    check_decode(nx * ny * nz, size, str(path))
    pos, plane = match.end() + 3 * icon_w * icon_h, nx * ny
    if pos > size:
        raise InvalidFileError(f"{path}: the SLC icon ({icon_w}x{icon_h}) runs past the end of the file")
    if compression not in (0, 1):
        raise InvalidFileError(f"{path}: unknown SLC compression {compression}")
    if compression == 0:
        if size - pos < plane * nz:
            raise InvalidFileError(f"{path}: {size - pos} bytes of SLC data, the grid needs {plane * nz}")
        return
    if size > MAX_TEXT_FILE_BYTES:
        raise InvalidFileError(f"{path}: {size} bytes (at most {MAX_TEXT_FILE_BYTES} for a compressed SLC file)")
    blob = path.read_bytes()
    for z in range(nz):
        slice_head = _SLC_SLICE.match(blob, pos)
        if slice_head is None:
            raise InvalidFileError(f"{path}: SLC slice {z}: missing size")
        start = slice_head.end()
        stop = start + int(slice_head.group(1))
        if stop > len(blob):
            raise InvalidFileError(f"{path}: SLC slice {z} runs past the end of the file")
        i, out = start, 0
        while True:
            if i >= stop:
                raise InvalidFileError(f"{path}: SLC slice {z} has no end marker")
            code = blob[i]
            run, i = code & 0x7F, i + 1
            if not run:
                break
            i += run if code & 0x80 else 1
            out += run
            if i > stop or out > plane:
                raise InvalidFileError(f"{path}: SLC slice {z} decodes beyond its {plane} values or its data")
        if out != plane:
            raise InvalidFileError(f"{path}: SLC slice {z} decodes to {out} values, not {plane}")
        pos = stop


def check_dicom_pixels(files: list[Path], plane_bytes: int) -> None:
    """Every DICOM file (``DICM`` at byte 128) must hold a whole slice after its pixel-data tag.

    VTK's DICOM reader fills a short slice silently; this refuses truncated files instead. The tag
    (7FE0,0010) is looked up with a memory map, without reading the file into memory.
    """
    import mmap

    for path in files:
        size = file_size(path)
        if size < 132:
            continue
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if mm[128:132] != b"DICM":
                continue
            at = mm.find(b"\xe0\x7f\x10\x00", 132)
        if at < 0:
            raise InvalidFileError(f"{path}: a DICOM file without pixel data")
        if size - at - 8 < plane_bytes:
            raise InvalidFileError(f"{path}: {max(size - at - 8, 0)} bytes of pixel data, a slice needs {plane_bytes}")


# ------------------------------------------------------------------ reading
class _Errors:
    """Collects VTK error events of a reader instead of letting VTK print them."""

    CallDataType = 13  # VTK_STRING: VTK hands the message to __call__

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, obj: Any, event: str, data: Any = None) -> None:
        lines = str(data or "").strip().splitlines()
        text = re.sub(r"^\w+ \(0x[0-9a-fA-F]+\):\s*", "", lines[-1].strip()) if lines else ""
        self.messages.append(text[:200] or "VTK error")

    def watch(self, *objects: Any) -> "_Errors":
        for obj in objects:
            obj.AddObserver("ErrorEvent", self)
        return self

    def check(self, path: Path, printed: list[str]) -> None:
        """Raise for an error event, or for a failure the reader only printed (metaio's "Uncompress failed")."""
        failed = [line.strip() for text in printed for line in text.splitlines()
                  if _PRINTED_FAILURE.search(line)]
        if self.messages or failed:
            raise InvalidFileError(f"{path}: cannot read ({(self.messages or failed)[0][:200]})")


_PRINTED_FAILURE = re.compile(r"fail|not read completely|cannot read|error", re.IGNORECASE)


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 while the block runs (appended to the yielded
    list at its end): MetaImage's reader reports a corrupt compressed stream there, and nowhere else."""
    sys.stderr.flush()
    saved = os.dup(2)
    printed: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield printed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            printed.append(tmp.read(1 << 16).decode("latin-1", "replace"))


def _reader(path: Path, suffix: str, folder: bool) -> tuple[Any, list[Path], bool, int]:
    """A VTK reader for ``path`` set up (not yet run), the files it reads, whether they are uncompressed, and
    the bytes before the data in the last file (-1: the reader's header size)."""
    io_image, _ = import_vtk()
    if folder:
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if len(files) > MAX_SLICE_FILES:
            raise InvalidFileError(f"{path}: {len(files)} files (at most {MAX_SLICE_FILES} slices)")
        if not files:
            raise InvalidFileError(f"{path}: an empty folder (expected DICOM files or TIFF slices)")
        reader = io_image.vtkDICOMImageReader()
        reader.SetDirectoryName(str(path))
        return reader, files, True, 0  # VTK's DICOM reader takes uncompressed pixel data only
    cls = {".mhd": "vtkMetaImageReader", ".mha": "vtkMetaImageReader", ".nrrd": "vtkNrrdReader",
           ".nhdr": "vtkNrrdReader", ".nii": "vtkNIFTIImageReader", ".nii.gz": "vtkNIFTIImageReader",
           ".slc": "vtkSLCReader"}.get(suffix)
    if cls is None:
        raise InvalidFileError(f"{path}: unsupported volume format {suffix!r}")
    file_size(path)
    files, uncompressed, skip = _sources(path, suffix)
    reader = getattr(io_image, cls)()
    if suffix == ".slc":
        check_slc(path)
    if suffix in (".nii", ".nii.gz") and not reader.CanReadFile(str(path)):
        raise InvalidFileError(f"{path}: not a {suffix} file VTK can read")
    reader.SetFileName(str(path))
    return reader, files, uncompressed, skip


def _nifti_origin(reader: Any) -> tuple[float, float, float]:
    """The translation of an axis-aligned NIfTI sform/qform (identity rotation); else the index origin 0."""
    for matrix in (reader.GetSFormMatrix(), reader.GetQFormMatrix()):
        if matrix is None:
            continue
        rows = [[matrix.GetElement(i, j) for j in range(4)] for i in range(3)]
        if all(rows[i][j] == (1.0 if i == j else 0.0) for i in range(3) for j in range(3)):
            return (rows[0][3], rows[1][3], rows[2][3])
    return (0.0, 0.0, 0.0)


def _rescale(reader: Any, suffix: str) -> tuple[float, float]:
    """The slope and intercept that turn a NIfTI file's stored values into physical ones (``scl_slope``,
    ``scl_inter``; a slope of 0 means none, as the NIfTI standard says). VTK's DICOM reader applies
    RescaleSlope/RescaleIntercept itself."""
    if suffix not in (".nii", ".nii.gz"):
        return 1.0, 0.0
    slope, offset = float(reader.GetRescaleSlope()), float(reader.GetRescaleIntercept())
    if not (math.isfinite(slope) and math.isfinite(offset)) or slope == 0.0:
        return 1.0, 0.0
    return slope, offset


def read_vtk_volume(path: str | os.PathLike, isolate: bool = True) -> tuple[np.ndarray, Frame]:
    """Read a MetaImage, NRRD, NIfTI or SLC file or a DICOM folder through VTK (TIFF: :func:`read_tiff_volume`).

    Returns the values as float32 ``[x, y, z]`` (size-1 axes dropped) and their :class:`Frame`. The
    extent, scalar type and components come from the header (``UpdateInformation``) and are checked
    against the limits before any data is read.

    Args:
        path: the file, or the folder of a DICOM series or of TIFF slices.
        isolate: run VTK in a forked child process (where ``fork`` exists), so that a crash of its C++
            reader on a corrupt file (seen with DICOM) is an :class:`InvalidFileError`, not the end of
            this process; the values come back through a pipe.
    """
    path = Path(path)
    folder = path.is_dir()
    suffix = "" if folder else vtk_suffix(path)
    if suffix in TIFF_SUFFIXES or (folder and _tiff_files(path)):
        return read_tiff_volume(path)
    import_vtk()  # the install hint, before any child is started
    if isolate and hasattr(os, "fork"):
        return _read_in_child(path)
    return _read_with_vtk(path, folder, suffix)


def _read_in_child(path: Path) -> tuple[np.ndarray, Frame]:
    """:func:`_read_with_vtk` in a forked child; its result (or its one-line error) comes back through a pipe.

    The child sends ``V`` + a JSON header (shape, frame) + the float32 values, or ``E`` + an error
    message; a child killed by a signal is reported as a crash of VTK's reader.
    """
    import json

    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        status = 0
        try:
            os.close(read_fd)
            with os.fdopen(write_fd, "wb") as out:
                try:
                    grid, frame = _read_with_vtk(path, path.is_dir(), "" if path.is_dir() else vtk_suffix(path))
                    data = np.ascontiguousarray(grid.transpose())  # already contiguous: the reader's order
                    head = json.dumps({"shape": list(data.shape), "origin": list(frame.origin),
                                       "spacing": list(frame.spacing), "array": frame.array,
                                       "dtype": frame.dtype}).encode()
                    out.write(b"V" + len(head).to_bytes(4, "little") + head)
                    out.write(data.reshape(-1).data.cast("B"))
                except (InvalidFileError, MemoryError) as exc:
                    text = (str(exc) or type(exc).__name__).encode()[:4000]
                    out.write(b"E" + len(text).to_bytes(4, "little") + text)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as inp:
            kind, size = inp.read(1), int.from_bytes(inp.read(4) or b"\0", "little")
            head = inp.read(size) if kind in (b"V", b"E") and size <= 1 << 16 else b""
            values: np.ndarray | None = None
            meta: dict[str, Any] = {}
            if kind == b"V":
                meta = json.loads(head)
                shape = tuple(int(n) for n in meta["shape"])
                if math.prod(shape) > MAX_GRID_VALUES:
                    raise InvalidFileError(f"{path}: {shape} is too large")
                values = np.empty(shape, dtype=np.float32)
                view, done = values.reshape(-1).data.cast("B"), 0
                while done < len(view):
                    got = inp.readinto(view[done:])
                    if not got:
                        break
                    done += got
                if done != len(view):
                    values = None
    finally:
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise InvalidFileError(f"{path}: VTK's reader crashed on this file (signal {os.WTERMSIG(status)}); "
                               "it is corrupt or of a kind VTK cannot read")
    if kind == b"E":
        raise InvalidFileError(head.decode("utf-8", "replace").replace("\n", " "))
    if values is None:
        raise InvalidFileError(f"{path}: VTK's reader stopped without a result (exit {os.WEXITSTATUS(status)})")
    dtype = meta.get("dtype") if meta.get("dtype") in SAMPLE_DTYPE_NAMES else None
    frame = Frame(tuple(meta["origin"]), tuple(meta["spacing"]), meta["array"], dtype)
    return values.transpose(), frame


def _read_with_vtk(path: Path, folder: bool, suffix: str) -> tuple[np.ndarray, Frame]:
    """The VTK read of :func:`read_vtk_volume`, in this process."""
    _, execution = import_vtk()
    reader, files, uncompressed, skip = _reader(path, suffix, folder)
    errors = _Errors().watch(reader, reader.GetExecutive())
    with native_stderr() as printed:
        reader.UpdateInformation()
    errors.check(path, printed)
    info = reader.GetOutputInformation(0)
    extent = info.Get(execution.vtkStreamingDemandDrivenPipeline.WHOLE_EXTENT()) if info is not None else None
    if extent is None or len(extent) != 6:
        raise InvalidFileError(f"{path}: no image extent in the header")
    dims = tuple(int(extent[2 * i + 1]) - int(extent[2 * i]) + 1 for i in range(3))
    if min(dims) < 1:
        raise InvalidFileError(f"{path}: empty image extent {tuple(extent)}")
    ncomp, vtype = int(reader.GetNumberOfScalarComponents()), int(reader.GetDataScalarType())
    if ncomp != 1:
        hint = " (VTK's NRRD reader takes a first axis of 9 or fewer samples as components)" if suffix in (
            ".nrrd", ".nhdr") else ""
        raise InvalidFileError(f"{path}: only scalar volumes are supported ({ncomp} components){hint}")
    if vtype not in _ITEM_SIZE:
        raise InvalidFileError(f"{path}: unsupported scalar type {reader.GetDataScalarType()}")
    if suffix in (".nii", ".nii.gz"):
        header = reader.GetNIFTIHeader()
        if header is not None and header.GetDim(0) > 3 and max(header.GetDim(k) for k in range(4, 8)) > 1:
            raise InvalidFileError(f"{path}: a NIfTI file with more than 3 axes (one volume per file is read)")
    count = math.prod(dims)
    if count > MAX_GRID_VALUES:
        raise InvalidFileError(f"{path}: {dims} is too large ({count} values, at most {MAX_GRID_VALUES})")
    total = sum(file_size(f) for f in files)
    check_decode(count, total, str(path))
    need = count * _ITEM_SIZE[vtype]
    data_bytes = (total if folder else file_size(files[-1])) - (int(reader.GetHeaderSize()) if skip < 0 else skip)
    if uncompressed and data_bytes < need:
        raise InvalidFileError(f"{path}: {data_bytes} bytes of data, the {dims} grid needs {need}")
    if folder and uncompressed:
        check_dicom_pixels(files, dims[0] * dims[1] * _ITEM_SIZE[vtype])
    spacing = tuple(float(v) for v in reader.GetDataSpacing())
    origin = tuple(float(v) for v in reader.GetDataOrigin())
    if suffix in (".nii", ".nii.gz"):
        origin = _nifti_origin(reader)
    with native_stderr() as printed:
        reader.Update()
    errors.check(path, printed)
    image = reader.GetOutput()
    scalars = image.GetPointData().GetScalars() if image is not None else None
    if scalars is None or scalars.GetNumberOfTuples() != count or scalars.GetNumberOfComponents() != 1:
        raise InvalidFileError(f"{path}: VTK read no {dims} scalar grid")
    from vtkmodules.util.numpy_support import vtk_to_numpy

    stored = vtk_to_numpy(scalars)
    dtype = stored.dtype.name
    values = stored.astype(np.float32)
    del stored
    slope, offset = _rescale(reader, suffix)
    if (slope, offset) != (1.0, 0.0):  # stored values to physical ones (NIfTI scl_slope/scl_inter)
        values *= np.float32(slope)
        values += np.float32(offset)
    del image, scalars, reader
    axes = [k for k, d in enumerate(dims) if d > 1] or [0]
    if not all(math.isfinite(v) for v in (*origin, *spacing)) or min(spacing[a] for a in axes) <= 0:
        raise InvalidFileError(f"{path}: bad origin/spacing {origin}/{spacing} (finite, positive spacing)")
    frame = Frame(tuple(origin[a] for a in axes), tuple(spacing[a] for a in axes), None, dtype)
    kept = tuple(d for d in dims if d > 1) or (1,)
    return values.reshape(tuple(reversed(kept))).transpose(), frame


# ------------------------------------------------------------------ TIFF (tifffile)
def _tiff_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES
                  and not p.name.startswith("."))


def _tiff_series(tiff: Any, path: Path) -> Any:
    """The one image series of an open TIFF, checked: scalar samples of a numeric type."""
    if len(tiff.series) != 1:
        raise InvalidFileError(f"{path}: {len(tiff.series)} image series in one TIFF (one stack expected)")
    series = tiff.series[0]
    if "S" in series.axes and series.shape[series.axes.index("S")] > 1:
        raise InvalidFileError(f"{path}: only scalar TIFF data is supported (samples per pixel > 1)")
    if series.dtype is None or series.dtype.kind not in "biuf":
        raise InvalidFileError(f"{path}: unsupported TIFF sample type {series.dtype}")
    return series


def read_tiff_volume(path: str | os.PathLike) -> tuple[np.ndarray, Frame]:
    """A multi-page TIFF stack, or a folder of single-page TIFF slices (name order), as float32 ``[x, y, z]``
    (x the column, y the row, z the page or file; size-1 axes dropped) in index space.

    Every file's tags are read first (tifffile parses them in Python) and the grid is checked against
    :data:`~inrkit.limits.MAX_GRID_VALUES` and the decode-ratio rule before any pixel is decoded.
    """
    import tifffile

    path = Path(path)
    files = _tiff_files(path) if path.is_dir() else [path]
    if len(files) > MAX_SLICE_FILES:
        raise InvalidFileError(f"{path}: {len(files)} TIFF slices (at most {MAX_SLICE_FILES})")
    total = sum(file_size(f) for f in files)
    try:
        shapes = []
        for f in files:
            with tifffile.TiffFile(f) as tiff:
                series = _tiff_series(tiff, f)
                shapes.append((tuple(int(n) for n in series.shape if n != 1) or (1,), series.dtype))
        if len({s for s in shapes}) != 1:
            raise InvalidFileError(f"{path}: the TIFF slices differ in size or type")
        plane, dtype = shapes[0]
        shape = ((len(files),) if len(files) > 1 else ()) + plane
        if len(shape) > 3:
            raise InvalidFileError(f"{path}: a TIFF with {len(shape)} axes {shape} (at most 3)")
        count = math.prod(shape)
        if count > MAX_GRID_VALUES:
            raise InvalidFileError(f"{path}: {shape} is too large ({count} values, at most {MAX_GRID_VALUES})")
        check_decode(count, total, str(path))
        out = np.empty(shape, dtype=np.float32)
        for k, f in enumerate(files):
            with tifffile.TiffFile(f) as tiff:
                data = tiff.series[0].asarray().reshape(plane)
            if len(files) > 1:
                out[k] = data
            else:
                out[...] = data
    except InvalidFileError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # tifffile and its codecs raise many kinds of errors on a corrupt file
        raise InvalidFileError(f"{path}: cannot read TIFF ({type(exc).__name__}: {str(exc)[:160]})".replace(
            "\n", " ")) from None
    values = out.transpose()
    return values, Frame((0.0,) * values.ndim, (1.0,) * values.ndim, None, np.dtype(dtype).name)
