"""Fuzzing the grid, image, mesh, series and scene readers (docs/limits.md), plus crafted hostile files.

Every fuzz test runs its whole hypothesis loop in a forked child whose address space is capped at
its size at the fork plus 512 MiB (``RLIMIT_AS``): a giant allocation raises MemoryError there,
which counts as an unclean outcome and fails the test. Each input must also finish within
``CPU_PER_INPUT`` seconds of CPU time (``time.process_time``; not wall time, the machine may be
loaded). The only clean outcomes are: loaded, ``InvalidFileError`` or ``InvalidInputError`` with a
one-line message. ``INRKIT_FUZZ_EXAMPLES=N`` runs N cases per loader instead of the defaults.

Crafted regression files (zlib bomb, huge PNG, manifest repetition, path escapes, planted temp-file
symlinks, huge headers) each run in their own forked child, measured: they must be decoded or
refused within 2 s of CPU time and 512 MiB of extra peak memory (resident set high-water mark).
"""
from __future__ import annotations

import base64
import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import MAX_SERIES_MEMBERS, MIB

MEMORY = 512 * MIB  # extra address space a child may map
CPU_PER_INPUT = 2.0  # CPU seconds per fuzz input
CRAFTED_CPU, CRAFTED_MEMORY = 2.0, 512 * MIB  # the bound for crafted files (docs/limits.md)
EXAMPLES = int(os.environ.get("INRKIT_FUZZ_EXAMPLES", "0"))
REPORT: dict[str, Any] = {}
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses fork, RLIMIT_AS and /proc")


def n_examples(default: int) -> int:
    return EXAMPLES or default


# --------------------------------------------------------------------------- forked, limited children
def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def forked(fn: Callable[[], Any], memory: int = MEMORY, cpu_hard_s: int = 600) -> Any:
    """Run ``fn`` in a forked child under RLIMIT_AS (current size + ``memory``); return its result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (_status("VmSize") + memory, hard))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_hard_s, resource.getrlimit(resource.RLIMIT_CPU)[1]))
            result: tuple[str, Any] = ("ok", fn())
        except BaseException as exc:  # report everything to the parent
            result = ("error", f"{type(exc).__name__}: {str(exc)[:3000]}\n{traceback.format_exc()[-4000:]}")
        data = pickle.dumps(result)
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and data, f"child died (status {status}): killed by a limit?"
    kind, value = pickle.loads(data)
    assert kind == "ok", value
    return value


def classify(load: Callable[[], Any]) -> str:
    """Run one input: 'loaded', or the clean error's name; anything else propagates (unclean)."""
    try:
        load()
    except (InvalidFileError, InvalidInputError) as exc:
        message = str(exc)
        assert message and "\n" not in message, f"error message must be one line: {message!r}"
        return type(exc).__name__
    return "loaded"


def fuzz(name: str, strategy: st.SearchStrategy, run_case: Callable[[Any], Any], default: int) -> dict:
    """Fuzz ``run_case`` over ``strategy`` in a limited child; return and record the outcome counts."""
    def body() -> dict:
        stats: Counter[str] = Counter()
        worst = [0.0]

        @settings(max_examples=n_examples(default), deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def prop(case: Any) -> None:
            t0 = time.process_time()
            outcome = classify(lambda: run_case(case))
            cpu = time.process_time() - t0
            worst[0] = max(worst[0], cpu)
            assert cpu < CPU_PER_INPUT, f"input took {cpu:.2f} s of CPU"
            stats[outcome] += 1

        prop()
        return {"inputs": sum(stats.values()), "outcomes": dict(stats), "unclean": 0,
                "worst_cpu_s": round(worst[0], 3)}

    result = forked(body)
    REPORT[name] = result
    print(f"\nFUZZ {name}: {json.dumps(result)}")
    assert result["inputs"] >= min(n_examples(default), 50)
    return result


def crafted(name: str, fn: Callable[[], Any]) -> dict:
    """Run one crafted case in a limited child; measure CPU time and peak extra resident memory."""
    def body() -> dict:
        try:
            with open("/proc/self/clear_refs", "w") as fh:  # reset the RSS high-water mark
                fh.write("5")
        except OSError:  # not allowed here: the high-water mark may then include the parent's (an over-estimate)
            pass
        base = _status("VmRSS")
        t0 = time.process_time()
        outcome = classify(fn)
        cpu = time.process_time() - t0
        return {"outcome": outcome, "cpu_s": round(cpu, 3), "peak_mib": round((_status("VmHWM") - base) / MIB, 1)}

    result = forked(body, memory=CRAFTED_MEMORY)
    REPORT[name] = result
    print(f"\nCRAFTED {name}: {json.dumps(result)}")
    assert result["cpu_s"] < CRAFTED_CPU and result["peak_mib"] < CRAFTED_MEMORY / MIB, result
    return result


# --------------------------------------------------------------------------- mutations
def _flip(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, val in edits:
        if buf:
            buf[pos % len(buf)] ^= val
    return bytes(buf)


def mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Seeds with byte flips, truncations, insertions, or random bytes."""
    seed = st.sampled_from(seeds)
    edits = st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(1, 255)), min_size=1, max_size=8)
    return st.one_of(
        st.builds(_flip, seed, edits),
        st.builds(lambda b, k: b[: k % (len(b) + 1)], seed, st.integers(0, 1 << 30)),
        st.builds(lambda b, k, junk: b[: k % (len(b) + 1)] + junk + b[k % (len(b) + 1):], seed,
                  st.integers(0, 1 << 30), st.binary(max_size=64)),
        st.binary(max_size=512),
    )


HUGE = st.sampled_from([0, 1, 2, 3, 7, 255, 1 << 16, 1 << 31, (1 << 32) - 1, 1 << 40, (1 << 63) - 1, -1])


# --------------------------------------------------------------------------- .npy
def _npy(header: str, payload: bytes, version: int = 1) -> bytes:
    text = header.encode("latin-1", "replace")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    size = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text + payload


def _npy_seeds() -> list[bytes]:
    import io

    out = []
    for arr in (np.zeros((4, 5, 3), np.float32), np.arange(12, dtype=np.int16).reshape(3, 4),
                np.ones((2, 2, 2), bool), np.zeros((3, 3), ">f8")):
        buf = io.BytesIO()
        np.save(buf, arr)
        out.append(buf.getvalue())
    return out


DESCRS = ["'<f4'", "'>f8'", "'|u1'", "'|b1'", "'<i8'", "'<c8'", "'|O'", "'<U5'", "'|V8'", "[('a', '<f4')]",
          "'<M8[s]'", "('<f4', (2,))", "'f4'", "1", "None", "'<f4'" + "+" * 50, "{'x': 1}", "'<f16'"]


@st.composite
def npy_files(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(mutated(_npy_seeds()))
    shape = draw(st.one_of(st.lists(HUGE, max_size=6).map(lambda s: str(tuple(s))),
                           st.sampled_from(["(", "[1, 2]", "(1,) * 3", "(" * 300, "(2.5,)", "()", "'x'"])))
    header = "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (
        draw(st.sampled_from(DESCRS)), draw(st.sampled_from(["False", "True", "1", "'no'"])), shape)
    if draw(st.integers(0, 9)) == 0:
        header = draw(st.text(max_size=200))
    return _npy(header, draw(st.binary(max_size=256)), draw(st.sampled_from([1, 2])))


def test_fuzz_npy(tmp_path):
    from inrkit.signals.readers import read_npy

    def run(data: bytes) -> None:
        (tmp_path / "a.npy").write_bytes(data)
        read_npy(tmp_path / "a.npy")

    fuzz("npy", npy_files(), run, 600)


# --------------------------------------------------------------------------- .raw
def test_fuzz_raw(tmp_path):
    from inrkit.signals.readers import read_raw

    dims = st.one_of(st.lists(HUGE, max_size=6), st.lists(st.integers(1, 8), min_size=1, max_size=4),
                     st.lists(st.sampled_from([True, 2.5, "4", None, np.int64(4)]), min_size=1, max_size=3))
    dtypes = st.sampled_from(["uint8", "float32", "<f8", ">i2", "bool", "object", "U4", "V8", "complex64",
                              "(2,)f4", "f", "garbage", "", "int1024", "M8", 7, None])
    case = st.one_of(st.tuples(st.binary(max_size=600), dims, dtypes),
                     st.tuples(st.just(bytes(range(256)) * 2), st.sampled_from([[512], [8, 8, 8], [2, 16, 16], [4, 128],
                                                                                [0, 512], [-8, -8, 8]]),
                               st.sampled_from(["uint8", "<i2", ">u2", "float32", "f8", "bool"])))

    def run(c: tuple) -> None:
        data, d, dt = c
        (tmp_path / "a.raw").write_bytes(data)
        read_raw(tmp_path / "a.raw", tuple(d), dt)

    fuzz("raw", case, run, 600)


# --------------------------------------------------------------------------- .vti
def _vti(ext: str, body: str, vtype: str = "Float32", fmt: str = "binary", compressor: str | None = None,
         htype: str = "UInt32", ncomp: str = "1", prolog: str = "") -> bytes:
    comp = f' compressor="{compressor}"' if compressor else ""
    return (f'{prolog}<VTKFile type="ImageData" version="0.1" byte_order="LittleEndian" header_type="{htype}"{comp}>'
            f'<ImageData WholeExtent="{ext}"><Piece Extent="{ext}"><PointData>'
            f'<DataArray type="{vtype}" Name="a" NumberOfComponents="{ncomp}" format="{fmt}">{body}</DataArray>'
            f'</PointData></Piece></ImageData></VTKFile>').encode()


def _compressed(data: bytes, header: list[int] | None = None, block: int = 0, fmt: str = "<I") -> str:
    block = block or max(len(data), 1)
    blocks = [data[i: i + block] for i in range(0, len(data), block)] or [b""]
    comp = [zlib.compress(b) for b in blocks]
    last = len(blocks[-1]) if len(blocks[-1]) != block else 0
    head = header if header is not None else [len(blocks), block, last] + [len(c) for c in comp]
    return (base64.b64encode(b"".join(struct.pack(fmt, v & 0xFFFFFFFF) for v in head)).decode()
            + base64.b64encode(b"".join(comp)).decode())


VOL = np.arange(60, dtype=np.float32).reshape(5, 4, 3)
RAW = np.ascontiguousarray(VOL.transpose()).tobytes()


def _vti_seeds() -> list[bytes]:
    ext = "0 4 0 3 0 2"
    plain = base64.b64encode(struct.pack("<I", len(RAW)) + RAW).decode()
    ascii_body = " ".join(str(v) for v in VOL.transpose().ravel())
    return [_vti(ext, plain), _vti(ext, _compressed(RAW), compressor="vtkZLibDataCompressor"),
            _vti(ext, _compressed(RAW, block=64), compressor="vtkZLibDataCompressor"),
            _vti(ext, ascii_body, fmt="ascii")]


@st.composite
def vti_files(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 2)) == 0:
        return draw(mutated(_vti_seeds()))
    ext = draw(st.one_of(st.just("0 4 0 3 0 2"), st.lists(HUGE, min_size=0, max_size=7).map(
        lambda v: " ".join(map(str, v))), st.sampled_from(["a b c", "0 4 0 3", "9" * 5000, "-5 4 0 3 0 2"])))
    vtype = draw(st.sampled_from(["Float32", "Float64", "UInt8", "Int64", "String", "", "Float32 "]))
    fmt = draw(st.sampled_from(["binary", "ascii", "appended", "raw"]))
    compressor = draw(st.sampled_from([None, "vtkZLibDataCompressor", "vtkLZ4DataCompressor"]))
    htype = draw(st.sampled_from(["UInt32", "UInt64", "Int8"]))
    ncomp = draw(st.sampled_from(["1", "3", "x", "1" * 40]))
    prolog = draw(st.sampled_from(["", "", '<!DOCTYPE x [<!ENTITY a "aaaa">]>']))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        header = draw(st.lists(HUGE, max_size=8))
        body = _compressed(draw(st.sampled_from([RAW, RAW[:17], b"\0" * 4096])), header,
                           fmt="<Q" if htype == "UInt64" else "<I")
    elif kind == 1:
        body = _compressed(draw(st.sampled_from([RAW, b"\0" * 100_000, RAW * 3])), block=draw(st.sampled_from(
            [0, 1, 64, 1024, 4096])), fmt="<Q" if htype == "UInt64" else "<I")
    elif kind == 2:
        body = draw(st.lists(st.sampled_from(["1", "-2.5", "nan", "1e400", "x", "0x10", " ", "\n"]), max_size=80)
                    .map(" ".join))
    else:
        body = base64.b64encode(draw(st.binary(max_size=300))).decode()
    return _vti(ext, body, vtype, fmt, compressor, htype, ncomp, prolog)


def test_fuzz_vti(tmp_path):
    from inrkit.signals.readers import read_vti

    def run(data: bytes) -> None:
        (tmp_path / "a.vti").write_bytes(data)
        read_vti(tmp_path / "a.vti")

    fuzz("vti", vti_files(), run, 450)


# --------------------------------------------------------------------------- legacy .vtk
def _vtk(dims: str, vtype: str, body: bytes, binary: bool = False, ncomp: str = "") -> bytes:
    return (f"# vtk DataFile Version 3.0\nfuzz\n{'BINARY' if binary else 'ASCII'}\nDATASET STRUCTURED_POINTS\n"
            f"DIMENSIONS {dims}\nSPACING 1 1 1\nORIGIN 0 0 0\nPOINT_DATA 60\nSCALARS a {vtype} {ncomp}\n"
            "LOOKUP_TABLE default\n").encode() + body


@st.composite
def vtk_files(draw: st.DrawFn) -> bytes:
    seeds = [_vtk("5 4 3", "float", " ".join(map(str, range(60))).encode()),
             _vtk("5 4 3", "float", VOL.transpose().astype(">f4").tobytes(), binary=True)]
    if draw(st.booleans()):
        return draw(mutated(seeds))
    dims = draw(st.one_of(st.lists(HUGE, max_size=4).map(lambda v: " ".join(map(str, v))),
                          st.sampled_from(["5 4 3", "a b c", "9" * 30 + " 1 1"])))
    vtype = draw(st.sampled_from(["float", "double", "unsigned_char", "long", "bit", "x"]))
    body = draw(st.one_of(st.binary(max_size=400), st.just(" ".join(map(str, range(60))).encode())))
    return _vtk(dims, vtype, body, draw(st.booleans()), draw(st.sampled_from(["", "1", "3", "x"])))


def test_fuzz_vtk_legacy(tmp_path):
    from inrkit.signals.readers import read_vtk_legacy

    def run(data: bytes) -> None:
        (tmp_path / "a.vtk").write_bytes(data)
        read_vtk_legacy(tmp_path / "a.vtk")

    fuzz("vtk", vtk_files(), run, 400)


# --------------------------------------------------------------------------- PNG / JPEG
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, depth: int = 8, color: int = 0, idat: bytes | None = None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width & 0xFFFFFFFF, height & 0xFFFFFFFF, depth, color, 0, 0, 0)
    if idat is None:
        idat = zlib.compress(b"\0" * min(height * (width + 1), 4096))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _image_seeds() -> list[bytes]:
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for mode, shape in (("L", (6, 5)), ("RGB", (4, 7, 3)), ("RGBA", (5, 5, 4)), ("I;16", (4, 4)), ("1", (8, 8))):
        arr = rng.integers(0, 255, shape).astype(np.uint16 if mode == "I;16" else np.uint8)
        img = Image.fromarray(arr).convert(mode) if mode == "1" else Image.fromarray(arr)
        for fmt in ("PNG", "JPEG") if mode in ("L", "RGB") else ("PNG",):
            buf = io.BytesIO()
            img.save(buf, format=fmt)
            out.append(buf.getvalue())
    pal = Image.fromarray(rng.integers(0, 255, (6, 6, 3)).astype(np.uint8)).convert("P")
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    return out + [buf.getvalue()]


@st.composite
def image_files(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 2)) > 0:
        return draw(mutated(_image_seeds()))
    return _png(draw(HUGE), draw(HUGE), draw(st.sampled_from([1, 2, 4, 8, 16, 3])),
                draw(st.sampled_from([0, 2, 3, 4, 6, 5])), draw(st.one_of(st.none(), st.binary(max_size=64))))


def test_fuzz_images(tmp_path):
    from inrkit.signals.readers import read_image

    def run(data: bytes) -> None:
        (tmp_path / "a.png").write_bytes(data)
        read_image(tmp_path / "a.png")

    fuzz("png/jpeg", image_files(), run, 600)


# --------------------------------------------------------------------------- meshes
def _mesh_seeds() -> dict[str, list[bytes]]:
    import io

    import trimesh

    mesh = trimesh.creation.box()
    out: dict[str, list[bytes]] = {}
    for ext, kwargs in (("ply", {"encoding": "ascii"}), ("ply", {"encoding": "binary"}), ("obj", {}), ("stl", {}),
                        ("off", {})):
        buf = io.BytesIO()
        mesh.export(buf, file_type=ext, **kwargs)
        out.setdefault(ext, []).append(buf.getvalue())
    return out


MESH_SEEDS = _mesh_seeds()


@st.composite
def mesh_files(draw: st.DrawFn) -> tuple[str, bytes]:
    ext = draw(st.sampled_from(sorted(MESH_SEEDS)))
    if draw(st.integers(0, 3)) > 0:
        return ext, draw(mutated(MESH_SEEDS[ext]))
    n, m = draw(HUGE), draw(HUGE)
    data = {"ply": f"ply\nformat ascii 1.0\nelement vertex {n}\nproperty float x\nproperty float y\n"
                   f"property float z\nelement face {m}\nproperty list uchar int vertex_indices\nend_header\n"
                   "0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
            "off": f"OFF\n{n} {m} 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
            "obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\n" + f"f 1 2 {n}\n" * 3,
            "stl": None}[ext]
    if data is None:
        return ext, b"\0" * 80 + struct.pack("<I", n & 0xFFFFFFFF) + draw(st.binary(max_size=200))
    return ext, data.encode()


def test_fuzz_meshes(tmp_path):
    from inrkit.signals.sdf import load_mesh

    def run(case: tuple[str, bytes]) -> None:
        ext, data = case
        (tmp_path / f"a.{ext}").write_bytes(data)
        load_mesh(tmp_path / f"a.{ext}")

    fuzz("meshes", mesh_files(), run, 400)


# --------------------------------------------------------------------------- series manifests
def _series_folder(root: Path) -> Path:
    from inrkit.signals.readers import write_vti

    folder = root / "series"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(folder / f"{name}.npy", rng.random((4, 4, 4)).astype(np.float32))
    rng.random((4, 4, 4)).astype(np.float32).transpose().tofile(folder / "c.raw")
    write_vti(folder / "d.vti", rng.random((4, 4, 4)).astype(np.float32))
    np.save(root / "outside.npy", np.zeros((4, 4, 4), np.float32))
    os.symlink(root / "outside.npy", folder / "link_out.npy")
    os.symlink(folder / "a.npy", folder / "link_in.npy")
    os.mkfifo(folder / "fifo.npy")
    (folder / "sub").mkdir()
    return folder


MEMBERS = st.sampled_from(["a.npy", "b.npy", "c.raw", "d.vti", "a.npy", "../outside.npy", "/etc/passwd.npy",
                           "link_out.npy", "link_in.npy", "fifo.npy", "missing.npy", "sub/../a.npy", "sub", "",
                           "x.txt", "./b.npy", "sub/../../outside.npy", "\0.npy"])
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.floats(allow_nan=False),
                      st.text(max_size=8))
JSON_ANY = st.recursive(JSON_LEAF, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c,
                                                                                        max_size=4), max_leaves=12)


MANIFEST_VALUES = (("format", ["inrkit-series", "other", 3]),
                        ("dims", [[4, 4, 4], [2, 2, 2], [4, 4], [10 ** 9] * 3, "abc", [True, 4, 4], [4.0, 4, 4],
                                  [4, 4, -4]]),
                        ("dtype", ["float32", "uint8", "object", "(2,)f4", 5, "x" * 300, "<f8", "V8"]),
                        ("labels", [[0, 1], [0.5], ["a"], [None, 1], [[1, 2]], 7, [1e308, -1e308], []]),
                        ("timesteps", [[0, 1, 2], "x"]),
                        ("parameters", [[{"k": 1}, {"k": 2}], [{}], [{"k": 1}, {"j": 2}], "p", [1, 2]]),
                        ("label_name", ["k", 5, "", None]), ("name", ["n", 5, ["x"]]))


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(JSON_ANY)).encode()
    man: dict[str, Any] = {}
    if kind < 6:  # a valid manifest with at most one bad member and one bad field
        man = {"files": draw(st.lists(st.sampled_from(["a.npy", "b.npy", "c.raw", "d.vti"]), min_size=1, max_size=4,
                                      unique=True)), "dims": [4, 4, 4], "dtype": "float32"}
        if draw(st.booleans()):
            man["labels"] = list(range(len(man["files"])))
        if draw(st.booleans()):
            man["files"][draw(st.integers(0, 3)) % len(man["files"])] = draw(MEMBERS)
        if draw(st.booleans()):
            key, values = draw(st.sampled_from(MANIFEST_VALUES))
            man[key] = draw(st.sampled_from(values))
        if draw(st.booleans()):
            del man["dtype"]
        return json.dumps(man).encode()
    if draw(st.integers(0, 5)):
        man["files"] = draw(st.one_of(st.lists(MEMBERS, max_size=6), st.just(["a.npy"] * 50), JSON_ANY))
    for key, values in MANIFEST_VALUES:
        if draw(st.booleans()):
            man[key] = draw(st.sampled_from(values))
    text = json.dumps(man)
    if draw(st.integers(0, 9)) == 0:
        text = text.replace("[0, 1]", "[NaN, 1]")
    return text.encode()


def test_fuzz_series(tmp_path):
    from inrkit.signals.series import load_series

    folder = _series_folder(tmp_path)

    def run(data: bytes) -> None:
        (folder / "manifest.json").write_bytes(data)
        load_series(folder)

    fuzz("series", manifests(), run, 700)


# --------------------------------------------------------------------------- NeRF scenes
def _scene_folder(root: Path) -> Path:
    from PIL import Image

    folder = root / "scene"
    (folder / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (8, 8, 4)).astype(np.uint8), "RGBA").save(folder / "train" / f"r_{k}.png")
    Image.fromarray(np.zeros((6, 8, 4), np.uint8), "RGBA").save(folder / "train" / "small.png")
    Image.fromarray(np.zeros((8, 8, 4), np.uint8), "RGBA").save(root / "outside.png")
    os.symlink(root / "outside.png", folder / "link_out.png")
    (folder / "huge.png").write_bytes(_png(20000, 10000))
    os.mkfifo(folder / "fifo.png")
    return folder


FRAME_PATHS = st.sampled_from(["./train/r_0", "./train/r_1", "train/r_0.png", "../outside", "/etc/hosts",
                               "./link_out", "./train/../train/r_1", "./missing", "", "./train/small", "./huge",
                               "./fifo", "train", "../scene/train/r_0", 5, None])
MATRICES = st.sampled_from([np.eye(4).tolist(), [[1, 0], [0, 1]], "x", [[1e300] * 4] * 4, [[1, 2, 3, "a"]] * 4,
                            np.eye(4).tolist()])
NUMBERS = st.sampled_from([0.7, 0, -1, 4, "x", True, None, 1e308, [1], 2.0, 6.0])


@st.composite
def scenes(draw: st.DrawFn) -> tuple[bytes, int]:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200)), 1
    if kind == 1:
        return json.dumps(draw(JSON_ANY)).encode(), 1
    frames = draw(st.lists(st.fixed_dictionaries({"file_path": FRAME_PATHS, "transform_matrix": MATRICES}),
                           max_size=4))
    data: dict[str, Any] = {"camera_angle_x": draw(NUMBERS), "frames": frames}
    if kind < 6:  # a valid scene with at most one bad frame or field
        good = [{"file_path": f"./train/r_{k}", "transform_matrix": np.eye(4).tolist()} for k in range(2)]
        data = {"camera_angle_x": 0.7, "frames": good[: draw(st.integers(1, 2))]}
        if draw(st.booleans()):
            data["frames"][-1] = {"file_path": draw(FRAME_PATHS), "transform_matrix": draw(MATRICES)}
        if draw(st.booleans()):
            data[draw(st.sampled_from(["camera_angle_x", "near", "far"]))] = draw(NUMBERS)
        return json.dumps(data).encode(), draw(st.sampled_from([1, 1, 2, 3, 100]))
    for key in ("near", "far"):
        if draw(st.booleans()):
            data[key] = draw(NUMBERS)
    if draw(st.booleans()):
        data["aabb"] = draw(st.sampled_from([[[-1, -1, -1], [1, 1, 1]], [[1, 1, 1], [-1, -1, -1]], [1, 2], "x",
                                             [[-1, -1, "a"], [1, 1, 1]], [[0, 0], [1, 1]]]))
    if draw(st.integers(0, 2)) == 0:
        data["frames"] = draw(JSON_ANY)
    return json.dumps(data).encode(), draw(st.sampled_from([1, 1, 2, 3, 100]))


def test_fuzz_scenes(tmp_path):
    from inrkit.nerf.scene import load_blender

    folder = _scene_folder(tmp_path)

    def run(case: tuple[bytes, int]) -> None:
        data, downscale = case
        (folder / "transforms_train.json").write_bytes(data)
        load_blender(folder, downscale=downscale, splits=("train",))

    fuzz("nerf scenes", scenes(), run, 500)


# --------------------------------------------------------------------------- crafted regression files
def _vti_bomb(path: Path, dims: tuple[int, int, int], vtype: str = "Float32", itemsize: int = 4) -> Path:
    """A .vti whose compressed zero blocks declare ``dims`` values: tiny on disk, huge inflated."""
    values = dims[0] * dims[1] * dims[2]
    block = 1 << 20
    nbytes = values * itemsize
    nblocks = -(-nbytes // block)
    last = nbytes - (nblocks - 1) * block
    comp_block, comp_last = zlib.compress(b"\0" * block, 9), zlib.compress(b"\0" * last, 9)
    sizes = [len(comp_block)] * (nblocks - 1) + [len(comp_last)]
    head = struct.pack(f"<{3 + nblocks}Q", nblocks, block, last if last != block else 0, *sizes)
    body = base64.b64encode(head).decode() + base64.b64encode(comp_block * (nblocks - 1) + comp_last).decode()
    path.write_bytes(_vti(f"0 {dims[0] - 1} 0 {dims[1] - 1} 0 {dims[2] - 1}", body, vtype,
                          compressor="vtkZLibDataCompressor", htype="UInt64"))
    return path


def test_crafted_vti_zlib_bomb_is_refused(tmp_path):
    from inrkit.signals.readers import read_vti

    path = _vti_bomb(tmp_path / "bomb.vti", (1024, 1024, 128), "Float64", 8)  # 1.4 MB file, 1.1 GB inflated
    assert path.stat().st_size < 1.5 * MIB
    result = crafted("vti zlib bomb (1.4 MB file, 1.1 GB inflated)", lambda: read_vti(path))
    assert result["outcome"] == "InvalidFileError"


def test_crafted_vti_largest_accepted_bomb_stays_bounded(tmp_path):
    from inrkit.signals.readers import read_vti

    path = _vti_bomb(tmp_path / "limit.vti", (320, 320, 320), "Float64", 8)  # 262 MB inflated, 131 MB float32
    result = crafted("vti at the decode limit (Float64, 32.8M values)", lambda: read_vti(path))
    assert result["outcome"] == "loaded"


def _huge_png(path: Path, width: int, height: int, rgb: bool = False) -> Path:
    comp = zlib.compressobj(9)
    row = b"\0" * (width * (3 if rgb else 1) + 1)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    path.write_bytes(_png(width, height, 8, 2 if rgb else 0, idat))
    return path


def test_crafted_huge_png_is_refused_with_exit_2(tmp_path):
    from inrkit.signals.readers import read_image

    path = _huge_png(tmp_path / "huge.png", 20000, 10000)
    result = crafted("PNG 20000x10000", lambda: read_image(path))
    assert result["outcome"] == "InvalidFileError"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "inrkit", "fit", str(path), "-o", str(tmp_path / "m.safetensors"),
                           "--steps", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "too large" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_crafted_png_at_the_limit_decodes_within_bounds(tmp_path):
    from inrkit.signals.readers import read_image

    path = _huge_png(tmp_path / "flat.png", 4096, 2700, rgb=True)  # 11M RGB pixels from a small file
    result = crafted("PNG 4096x2700 RGB flat (the free allowance)", lambda: read_image(path))
    assert result["outcome"] == "loaded"
    path = _huge_png(tmp_path / "over.png", 4096, 2800, rgb=True)  # just over the free allowance
    assert crafted("PNG 4096x2800 RGB flat (over the allowance)", lambda: read_image(path))["outcome"] == \
        "InvalidFileError"


def test_crafted_npy_raw_vtk_mesh_headers_are_refused(tmp_path):
    from inrkit.signals.readers import read_npy, read_raw, read_vtk_legacy
    from inrkit.signals.sdf import load_mesh

    (tmp_path / "big.npy").write_bytes(_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }",
                                            b"\0" * 64))
    (tmp_path / "a.raw").write_bytes(b"\0" * 64)
    (tmp_path / "big.vtk").write_bytes(_vtk("100000 100000 100000", "double", b"1 2 3"))
    (tmp_path / "big.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 100000000\n"
                                       b"property float x\nend_header\n" + b"\0" * 64)
    cases = {"npy 2^40 elements": lambda: read_npy(tmp_path / "big.npy"),
             "raw dims 2^20 x 2^20 x 2^20": lambda: read_raw(tmp_path / "a.raw", (1 << 20,) * 3, "float64"),
             "vtk 10^15 voxels": lambda: read_vtk_legacy(tmp_path / "big.vtk"),
             "ply 10^8 vertices": lambda: load_mesh(tmp_path / "big.ply")}
    for name, fn in cases.items():
        assert crafted(name, fn)["outcome"] in ("InvalidFileError", "InvalidInputError")


def test_crafted_manifest_repetition_is_refused(tmp_path):
    from inrkit.signals.series import load_series

    np.save(tmp_path / "m.npy", np.random.default_rng(0).random((64, 64, 64)).astype(np.float32))
    (tmp_path / "manifest.json").write_text(json.dumps({"files": ["m.npy"] * 4000}))
    assert (tmp_path / "manifest.json").stat().st_size < 45_000
    result = crafted("series manifest listing one member 4000 times", lambda: load_series(tmp_path))
    assert result["outcome"] == "InvalidFileError"
    (tmp_path / "manifest.json").write_text(json.dumps({"files": ["m.npy"] * (MAX_SERIES_MEMBERS + 1)}))
    with pytest.raises(InvalidFileError, match="at most"):
        load_series(tmp_path)
    for i in range(1, 3):  # same data under other names (hard link): the repeat is still caught
        os.link(tmp_path / "m.npy", tmp_path / f"h{i}.npy")
    (tmp_path / "manifest.json").write_text(json.dumps({"files": ["m.npy", "h1.npy", "h2.npy"]}))
    with pytest.raises(InvalidFileError, match="repeats"):
        load_series(tmp_path)


def test_crafted_series_total_is_bounded(tmp_path):
    from inrkit.signals.series import load_series

    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(tmp_path / f"m{i}.npy", rng.random((4, 4, 4)).astype(np.float32))
    (tmp_path / "manifest.json").write_text(json.dumps({"files": ["m0.npy", "m1.npy", "m2.npy"],
                                                         "dims": [1024, 1024, 1024]}))
    result = crafted("series manifest dims 1024^3 x 3", lambda: load_series(tmp_path))
    assert result["outcome"] == "InvalidFileError"


def test_series_members_must_stay_inside(tmp_path):
    from inrkit.signals.series import load_series

    outside = tmp_path / "outside"
    outside.mkdir()
    np.save(outside / "secret.npy", np.zeros((4, 4, 4), np.float32))
    folder = tmp_path / "s"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((4, 4, 4), np.float32))
    os.symlink(outside / "secret.npy", folder / "b.npy")
    for files, message in ((["a.npy", "b.npy"], "outside"), (["a.npy", "../outside/secret.npy"], "inside"),
                           (["a.npy", str(outside / "secret.npy")], "inside")):
        (folder / "manifest.json").write_text(json.dumps({"files": files}))
        with pytest.raises(InvalidFileError, match=message):
            load_series(folder)
    (folder / "manifest.json").unlink()  # a folder without a manifest: the symlink is refused too
    with pytest.raises(InvalidFileError, match="outside"):
        load_series(folder)
    os.unlink(folder / "b.npy")
    os.symlink(folder / "a.npy", folder / "b.npy")  # a symlink inside the folder to another member: a repeat
    with pytest.raises(InvalidFileError, match="repeats"):
        load_series(folder)
    os.unlink(folder / "b.npy")
    os.mkfifo(folder / "b.npy")  # never opened: a FIFO would block the reader
    with pytest.raises(InvalidFileError, match="regular file"):
        load_series(folder)


def test_scene_frames_must_stay_inside(tmp_path):
    from PIL import Image

    from inrkit.nerf.scene import load_blender

    Image.fromarray(np.zeros((8, 8, 4), np.uint8), "RGBA").save(tmp_path / "secret.png")
    scene = tmp_path / "scene"
    (scene / "train").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 4), np.uint8), "RGBA").save(scene / "train" / "r_0.png")
    os.symlink(tmp_path / "secret.png", scene / "train" / "r_1.png")
    eye = np.eye(4).tolist()
    for path, message in (("../secret", "outside"), ("./train/../../secret", "outside"),
                          (str(tmp_path / "secret"), "relative"), ("./train/r_1", "outside")):
        frames = [{"file_path": "./train/r_0", "transform_matrix": eye}, {"file_path": path, "transform_matrix": eye}]
        (scene / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
        result = crafted(f"scene frame {path[-20:]}", lambda: load_blender(scene, splits=("train",)))
        assert result["outcome"] == "InvalidFileError"
        with pytest.raises(InvalidFileError, match=message):
            load_blender(scene, splits=("train",))
    frames = [{"file_path": "./train/r_0", "transform_matrix": eye}] * 2
    (scene / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    with pytest.raises(InvalidFileError, match="listed twice"):
        load_blender(scene, splits=("train",))


def test_atomic_path_never_follows_a_planted_symlink(tmp_path):
    from inrkit.utils import atomic_path, atomic_write

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for pid in range(os.getpid() - 50, os.getpid() + 50):  # every name the old scheme could pick
        os.symlink(victim, out / f".img.tmp{pid}.png")
    with atomic_path(out / "img.png") as tmp:
        assert not tmp.is_symlink() and tmp.parent == out and tmp.name.endswith(".png")
        tmp.write_bytes(b"new image")
    assert victim.read_text() == "precious" and (out / "img.png").read_bytes() == b"new image"
    os.symlink(victim, out / "link.png")  # a symlink AT the target is replaced, not written through
    with atomic_path(out / "link.png") as tmp:
        tmp.write_bytes(b"x")
    assert victim.read_text() == "precious" and not (out / "link.png").is_symlink()
    before = set(out.iterdir())
    with pytest.raises(RuntimeError):
        with atomic_path(out / "fail.png") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with atomic_write(out / "fail.bin") as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert set(out.iterdir()) == before  # temp files removed on failure, nothing left behind


def test_grayscott_minimum_size(tmp_path):
    from inrkit.meta.simulate import generate_series
    from inrkit.signals.series import load_series

    summary = generate_series("grayscott", tmp_path / "gs", size=4, steps=2, progress=False, iterations_per_step=5)
    assert summary["dims"] == [4, 4, 4]
    assert load_series(tmp_path / "gs").dims == (4, 4, 4)


def test_crafted_dense_mesh_stays_bounded(tmp_path):
    from inrkit.signals.sdf import load_mesh

    path = tmp_path / "dense.obj"  # 4 MB of faces: the most triangles per byte of file an OBJ can declare
    path.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n" + b"f 1 2 3\nf 1 2 4\n" * 250_000)
    result = crafted("OBJ with 500k faces in 4 MB", lambda: load_mesh(path))
    assert result["outcome"] in ("loaded", "InvalidFileError")


def test_harness_catches_a_giant_allocation_and_a_stray_exception():
    """The limits are real: a 1 GiB allocation or a non-clean exception inside a fuzz case fails it."""
    with pytest.raises(AssertionError, match="MemoryError"):
        forked(lambda: classify(lambda: np.ones(1 << 27)))
    with pytest.raises(AssertionError, match="KeyError"):
        forked(lambda: classify(lambda: {}["x"]))
