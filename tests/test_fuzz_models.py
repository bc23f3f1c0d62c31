"""Fuzzing the model loaders (docs/limits.md): safetensors model files and ``.npz`` weight lists.

Every input runs in a forked child under ``RLIMIT_AS`` (its address space at the start + 512 MiB)
and is measured: CPU seconds (``time.process_time``, not wall time: the machine is shared) and peak
resident memory (``VmHWM`` reset before each input). An input is clean when it loads or raises
:class:`InvalidFileError`; any other exception, more than 2 s CPU or more than 512 MiB fails the test.
``INRKIT_FUZZ_EXAMPLES`` sets the examples per fuzzer (default 250). Run this file as a script to
print the per-loader numbers (inputs, outcome classes, unclean outcomes, worst CPU and memory).
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import resource
import shutil
import struct
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_files import rewrite_header

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models import NeRFConfig, NeRFMLP, load_model, save_model, siren
from inrkit.models.io import digest, expected_shapes

EXAMPLES = int(os.environ.get("INRKIT_FUZZ_EXAMPLES", "250"))
CPU_LIMIT_S = 2.0
MEMORY_LIMIT = 512 << 20
pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc/self/status").exists(),
                                reason="needs fork and /proc (Linux)")


# ------------------------------------------------------------------ the harness
def _status(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) << 10 if match else 0


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


class Meter:
    """Outcome classes, CPU time and peak memory of every input one loader sees (in the child)."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.worst_cpu, self.worst_memory, self.unclean = 0.0, 0, 0

    def run(self, load: Callable[[], Any]) -> str:
        """Run one input; returns its outcome class; raises AssertionError when it is not clean."""
        _reset_peak()
        base = _status("VmRSS")
        t0 = time.process_time()
        try:
            load()
            outcome = "loaded"
        except (InvalidFileError, InvalidInputError) as exc:
            outcome = type(exc).__name__
        except BaseException as exc:  # noqa: BLE001 - what the fuzzer is looking for
            outcome = f"UNCLEAN {type(exc).__name__}: {str(exc)[:300]}"
        cpu = time.process_time() - t0
        memory = max(0, _status("VmHWM") - base)
        self.outcomes[outcome.split(":")[0]] += 1
        self.worst_cpu, self.worst_memory = max(self.worst_cpu, cpu), max(self.worst_memory, memory)
        if outcome.startswith("UNCLEAN"):
            self.unclean += 1
        assert not outcome.startswith("UNCLEAN"), outcome
        assert cpu <= CPU_LIMIT_S, f"input took {cpu:.2f} s CPU"
        assert memory <= MEMORY_LIMIT, f"input used {memory >> 20} MiB"
        return outcome

    def report(self) -> dict[str, Any]:
        return {"inputs": sum(self.outcomes.values()), "outcomes": dict(self.outcomes), "unclean": self.unclean,
                "worst_cpu_s": round(self.worst_cpu, 3), "worst_peak_mib": round(self.worst_memory / 2**20, 1)}


def in_child(job: Callable[[Meter], None]) -> dict[str, Any]:
    """Run ``job`` in a forked child under the memory limit; returns the meter's report (fails on an error)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        code, meter = 0, Meter()
        try:
            limit = _status("VmSize") + MEMORY_LIMIT
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
            job(meter)
            result: dict[str, Any] = {"ok": True, **meter.report()}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            first = str(exc).splitlines()[0][:1000] if str(exc) else ""
            error = f"{type(exc).__name__}: {first}\n{traceback.format_exc()[-3000:]}"
            result, code = {"ok": False, "error": error, **meter.report()}, 1
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(result))
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert text, f"the child died without a report (wait status {status})"
    result = json.loads(text)
    assert result["ok"], result["error"]
    return result


def fuzz(job_name: str, strategy: st.SearchStrategy, load: Callable[[Any], Any]) -> dict[str, Any]:
    """Hypothesis over ``strategy`` in a child; every drawn input goes through ``Meter.run(load)``."""
    def job(meter: Meter) -> None:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def check(data: Any) -> None:
            meter.run(lambda: load(data))

        check()

    report = in_child(job)
    print(f"{job_name}: {json.dumps({k: v for k, v in report.items() if k != 'ok'})}")
    return report


# ------------------------------------------------------------------ building files
def st_bytes(header: dict, data: bytes) -> bytes:
    """A safetensors container from its JSON header (tensors + ``__metadata__``) and data."""
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + data


def model_bytes(meta_text: str, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> bytes:
    header: dict[str, Any] = {"__metadata__": {"inrkit": meta_text}}
    data, offset = b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    return st_bytes(header, data)


def npy_bytes(header_text: str | bytes, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """An ``.npy`` member from a raw header text (any text: the fuzzer's point) and data bytes."""
    text = header_text.encode("latin1", "replace") if isinstance(header_text, str) else header_text
    magic = b"\x93NUMPY" + bytes(version)
    size = struct.pack("<H", len(text)) if version[0] == 1 else struct.pack("<I", len(text))
    return magic + size + text + data


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    return buffer.getvalue()


FUZZ_DIR: list[Path] = []  # the folder of the fuzzed inputs, made before the tests (forked children inherit it)


@pytest.fixture(scope="module", autouse=True)
def _fuzz_dir() -> Any:
    """A fresh temporary folder for the module's inputs, removed when the module ends."""
    FUZZ_DIR.append(Path(tempfile.mkdtemp(prefix="inrkit-fuzz-")))
    yield
    shutil.rmtree(FUZZ_DIR.pop(), ignore_errors=True)


def write_and(load: Callable[[Path], Any], suffix: str) -> Callable[[bytes], Any]:
    """A loader of bytes: write them to a temp file with ``suffix``, then ``load`` it."""

    def run(raw: bytes) -> Any:
        path = FUZZ_DIR[-1] / f"input{suffix}"
        path.write_bytes(raw)
        return load(path)

    return run


def _seed_files() -> list[bytes]:
    tiny = NeRFConfig(pos_freqs=1, dir_freqs=1, trunk_widths=[4, 4], skips=[0], feature_width=4, view_widths=[4])
    with tempfile.TemporaryDirectory(prefix="inrkit-seeds-") as tmp:
        folder = Path(tmp)
        files = [save_model(siren(2, 1, [8, 8]), folder / "a.safetensors", signal={"kind": "image", "shape": [4, 4]}),
                 save_model(NeRFMLP(tiny, seed=0), folder / "n.safetensors")]
        return [f.read_bytes() for f in files]


def _seed_npz() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, W0=rng.normal(size=(4, 2)), b0=rng.normal(size=4), W1=rng.normal(size=(1, 4)),
                        b1=rng.normal(size=1), activations=np.array(["sine", "identity"]), omega0=np.array([30.0]))
    return buffer.getvalue()


SEEDS = _seed_files()
NPZ_SEED = _seed_npz()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed file with bit flips, byte writes, a cut, a duplicated or a deleted span."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "dup", "delete", "digits"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0, 0x22, 0x5B, 0x7B, 0x39, 0xFF, draw(st.integers(0, 255))]))
        elif op == "cut":
            del data[i:]
        elif op == "dup":
            j = draw(st.integers(i, min(len(data), i + 64)))
            data[i:i] = data[i:j] * draw(st.integers(1, 20))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 16))]
        else:  # a run of digits (huge numbers in headers)
            data[i:i] = b"9" * draw(st.integers(1, 6000))
    return bytes(data)


# ------------------------------------------------------------------ strategies: safetensors model files
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True),
                      st.text(max_size=8))
JSON_VALUES = st.recursive(JSON_LEAF, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                            st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                           max_leaves=12)
WIDTH = st.one_of(st.integers(1, 9), st.sampled_from([0, -1, 12000, 2**20 + 1, 10**40]), st.booleans(),
                  st.floats(allow_nan=True), st.text(max_size=3))
OMEGA = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**20), st.sampled_from([30.0]))
DTYPE = st.sampled_from(["F32", "F32", "F32", "F16", "F64", "BF16", "I8", "U8", "BOOL", "I64"])
ITEMSIZE = {"F32": 4, "F16": 2, "F64": 8, "BF16": 2, "I8": 1, "U8": 1, "BOOL": 1, "I64": 8}


def nested(depth: int) -> list:
    """``[[[...]]]``, ``depth`` lists deep (built without recursion)."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@st.composite
def nesting(draw: st.DrawFn) -> Any:
    return nested(draw(st.sampled_from([1, 10, 63, 64, 65, 200])))


@st.composite
def model_header_file(draw: st.DrawFn) -> bytes:
    """A safetensors file whose inrkit header is drawn field by field (valid, borderline or hostile)."""
    kind = draw(st.sampled_from(["mlp", "mlp", "mlp", "nerf", None, "junk"]))
    widths = draw(st.lists(WIDTH, min_size=0, max_size=5))
    n = max(len(widths) - 1, 0)
    header: dict[str, Any] = {"format": draw(st.sampled_from(["inrkit-model", "inrkit-model", "inrkit-nerf", 7])),
                              "version": draw(st.sampled_from([1, 2, 2, 3, "2", 2.0, True, 10**100]))}
    if kind == "nerf":
        header["type"] = "nerf"
        header["nerf"] = {"pos_freqs": draw(st.integers(-1, 40)), "dir_freqs": draw(st.integers(0, 3)),
                          "trunk_widths": draw(st.lists(WIDTH, max_size=4)), "skips": draw(st.lists(st.integers(-1, 4),
                                                                                                    max_size=2)),
                          "feature_width": draw(WIDTH), "view_widths": draw(st.lists(WIDTH, max_size=2)),
                          "density_activation": draw(st.sampled_from(["softplus", "relu", [], "x"]))}
        if draw(st.booleans()):
            header["nerf"]["bogus"] = 1
    elif kind is not None:
        if kind == "junk":
            header["type"] = draw(st.sampled_from(["junk", [], {}, 3]))
        header["widths"] = widths
        header["activations"] = draw(st.lists(st.sampled_from(["sine", "relu", "identity", "finer", "x", 3]),
                                              min_size=n, max_size=n + draw(st.integers(0, 1))))
        header["omegas"] = draw(st.lists(OMEGA, min_size=n, max_size=n + draw(st.integers(0, 1))))
        header["coord_dim"] = draw(st.one_of(st.integers(-1, 4), WIDTH))
        header["fourier"] = draw(st.sampled_from([False, False, True, "yes", 0]))
    header["signal"] = draw(st.one_of(st.just({}), st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3),
                                      st.builds(lambda d: {"deep": d}, nesting()), JSON_VALUES))
    header["extra"] = draw(st.one_of(st.just({}), st.builds(lambda d: {"deep": d}, nesting()), JSON_VALUES))
    # tensors: the header's own shapes when it has some (mostly float32), else random ones
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    try:
        shapes = expected_shapes(header) if kind in ("mlp", "nerf") else {}
    except Exception:  # noqa: BLE001 - an invalid header has no shapes
        shapes = {}
    dims_ok = all(type(d) is int and 0 <= d <= 10_000 for shape in shapes.values() for d in shape)
    if not dims_ok or sum(math.prod(s) for s in shapes.values()) > 10_000:
        shapes = {}
    if not shapes:
        shapes = {f"W{i}": tuple(draw(st.lists(st.integers(0, 4), max_size=3))) for i in range(draw(st.integers(0, 3)))}
    dtype = draw(DTYPE)
    values = draw(st.sampled_from([0.0, 0.5, float("nan"), float("inf")]))
    for name, shape in shapes.items():
        count = math.prod(shape)
        raw = (np.full(count, values, np.float32).tobytes() if dtype == "F32"
               else bytes(count * ITEMSIZE[dtype]))
        tensors[name] = (dtype, shape, raw)
    if draw(st.booleans()) and dtype == "F32" and all(t[0] == "F32" for t in tensors.values()):
        tt = {k: torch.from_numpy(np.frombuffer(v[2], np.float32).reshape(v[1]).copy()) for k, v in tensors.items()}
        try:
            header["sha256"] = digest(tt, list(tt), header if header.get("version") != 1 else None)
        except Exception:  # noqa: BLE001
            header["sha256"] = "0" * 64
    else:
        header["sha256"] = draw(st.sampled_from(["0" * 64, 5, None]))
    text = json.dumps(header)
    text = draw(st.sampled_from([text, text, text.replace("30.0", "1" * 5000, 1), text.replace("[]", "NaN", 1)]))
    return model_bytes(text, tensors)


def _valid_mlp_header() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from inrkit.models.io import model_header, model_tensors

    model = siren(2, 1, [4], omega0=30.0, omega_hidden=30.0)
    return model_header(model, {"kind": "image", "shape": [4, 4]}), model_tensors(model)


@st.composite
def one_field_changed(draw: st.DrawFn) -> bytes:
    """A valid MLP file with one header field replaced by a drawn value, re-signed or not."""
    header, tensors = _valid_mlp_header()
    key = draw(st.sampled_from(["widths", "activations", "omegas", "coord_dim", "fourier", "version", "signal",
                                "extra", "format", "type", "omegas", "omegas"]))
    if key == "omegas":
        header["omegas"][draw(st.integers(0, 1))] = draw(OMEGA)
    elif key == "widths":
        header["widths"][draw(st.integers(0, 2))] = draw(WIDTH)
    elif draw(st.integers(0, 3)):
        header[key] = draw(JSON_VALUES)
    if draw(st.integers(0, 3)):
        try:
            header["sha256"] = digest(tensors, ["W0", "W1", "b0", "b1"], header)
        except Exception:  # noqa: BLE001 - a header the digest cannot serialise
            header["sha256"] = "0" * 64
    raw = {k: ("F32", tuple(v.shape), v.numpy().tobytes()) for k, v in tensors.items()}
    return model_bytes(json.dumps(header), raw)


@st.composite
def container_file(draw: st.DrawFn) -> bytes:
    """A safetensors container whose own header is hostile (offsets, shapes, dtypes, lengths)."""
    shape = draw(st.lists(st.sampled_from([0, 1, 3, 2**20, 2**40, -1]), max_size=4))
    begin, end = draw(st.integers(-2, 64)), draw(st.integers(-2, 2**40))
    header = {"__metadata__": {"inrkit": draw(st.sampled_from(['{"format": "inrkit-model"}', "{", "[" * 3000]))},
              "W0": {"dtype": draw(DTYPE), "shape": shape, "data_offsets": [begin, end]}}
    data = bytes(draw(st.integers(0, 64)))
    raw = st_bytes(header, data)
    if draw(st.booleans()):  # a lying header length
        raw = struct.pack("<Q", draw(st.sampled_from([0, 7, 2**40, len(raw) * 2]))) + raw[8:]
    return raw


# ------------------------------------------------------------------ strategies: .npz
DESCR = st.sampled_from(["<f4", "<f8", ">f8", "<i4", "|u1", "|b1", "<c16", "|O", "<U8", "<U0", "|V8", "|S4",
                         "<f2", "[('a', '<f4')]", "('<f4', (2,))", "<M8[s]", "xx"])
SHAPE_TEXT = st.one_of(
    st.lists(st.integers(0, 5), max_size=3).map(lambda s: repr(tuple(s))),
    st.sampled_from(["(1099511627776,)", "(2**40,)", "(-1, 3)", "(1 << 40, 1 << 40)", "(4, 2.0)", "((1,),)",
                     "(" + "9" * 5000 + ",)", "(" * 500 + ")" * 500, "'abc'", "None"]))


@st.composite
def npy_member(draw: st.DrawFn) -> bytes:
    """An ``.npy`` member: a drawn header text (dict repr, garbage, unterminated) and some data."""
    style = draw(st.sampled_from(["valid", "valid", "dict", "dict", "dict", "garbage", "tokens"]))
    if style == "valid":  # a well-formed member with drawn values (NaN, huge, negative, other dtypes)
        values = np.array(draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=3)))
        buffer = io.BytesIO()
        with np.errstate(all="ignore"):
            np.save(buffer, values.astype(draw(st.sampled_from(["<f4", "<f8", ">f8", "<f2", "<i4", "|u1"]))))
        return buffer.getvalue()
    if style == "dict":
        descr = draw(DESCR)
        descr_repr = descr if descr.startswith(("[", "(")) else repr(descr)
        text = (f"{{'descr': {descr_repr}, 'fortran_order': {draw(st.sampled_from(['False', 'True', '1']))}, "
                f"'shape': {draw(SHAPE_TEXT)}, }}")
    elif style == "garbage":
        text = draw(st.text(max_size=60))
    else:  # tokenizer and parser corner cases
        text = draw(st.sampled_from(["{'descr': '<f4', 'shape': (1,), 'fortran_order': False", "{'a': '''", "{\\",
                                     "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': lambda: 0}",
                                     "{'descr': b'<f4', 'fortran_order': False, 'shape': (2,)}", "\x00{}", "{" * 200]))
    text += " " * draw(st.integers(0, 70)) + "\n"
    data = bytes(draw(st.sampled_from([0, 4, 8, 16, 64])))
    version = draw(st.sampled_from([(1, 0), (1, 0), (2, 0), (3, 0), (9, 9)]))
    return npy_bytes(text, data, version)


@st.composite
def npz_file(draw: st.DrawFn) -> bytes:
    """An ``.npz`` of valid and drawn members, stored or compressed, sometimes with its bytes mutated."""
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    good = {"W0.npy": rng.normal(size=(3, 2)), "b0.npy": rng.normal(size=3), "W1.npy": rng.normal(size=(1, 3)),
            "b1.npy": rng.normal(size=1), "activations.npy": np.array(["relu", "identity"])}
    members: dict[str, bytes] = {}
    for name, arr in good.items():
        buffer = io.BytesIO()
        np.save(buffer, arr)
        members[name] = buffer.getvalue()
    names = list(good) + ["omega0.npy"] * 4 + ["W7.npy", "x.npy", "W0"]
    for _ in range(draw(st.integers(0, 2))):
        members[draw(st.sampled_from(names))] = draw(npy_member())
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
    raw = zip_bytes(members, method)
    return draw(mutated([raw])) if draw(st.integers(0, 3)) == 0 else raw


# ------------------------------------------------------------------ the fuzz tests
def _load(path: Path) -> Any:
    model, _ = load_model(path)
    return model


def test_fuzz_safetensors_mutations():
    report = fuzz("safetensors (mutated valid files)", mutated(SEEDS), write_and(_load, ".safetensors"))
    assert report["unclean"] == 0 and report["inputs"] >= EXAMPLES // 2


def test_fuzz_safetensors_headers():
    report = fuzz("safetensors (drawn inrkit headers)", st.one_of(model_header_file(), one_field_changed()),
                  write_and(_load, ".safetensors"))
    assert report["unclean"] == 0 and report["outcomes"].get("InvalidFileError", 0) > 0


def test_fuzz_safetensors_containers():
    report = fuzz("safetensors (hostile container headers)", container_file(), write_and(_load, ".safetensors"))
    assert report["unclean"] == 0


def test_fuzz_npz_members():
    report = fuzz(".npz (drawn .npy members)", npz_file(), write_and(_load, ".npz"))
    assert report["unclean"] == 0 and report["inputs"] >= EXAMPLES // 2


def test_fuzz_npz_mutations():
    report = fuzz(".npz (mutated valid files)", mutated([NPZ_SEED]), write_and(_load, ".npz"))
    assert report["unclean"] == 0


# ------------------------------------------------------------------ crafted regression files
def _rewrite_header(path: Path, edit: Callable[[dict], Any], resign: bool = True, text: str | None = None) -> Path:
    """A crafted copy of a model file with its inrkit header changed (``resign``: recompute the checksum)."""
    out = path.with_name(f"crafted-{len(list(path.parent.glob('crafted-*')))}-{path.name}")
    return rewrite_header(path, edit, resign=resign, out=out, text=text)


def crafted_cases(folder: Path) -> dict[str, tuple[Callable[[], Any], type[Exception] | None, str]]:
    """The crafted files: name -> (what to run, expected error or None, message fragment)."""
    from inrkit.api import render_file
    from inrkit.train.checkpoint import load_checkpoint, save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    model = siren(2, 1, [16, 16], omega0=30.0, omega_hidden=30.0)
    good = save_model(model, folder / "m.safetensors", signal={"kind": "image", "shape": [8, 8], "channels": 1,
                                                                 "value_offset": [0.0], "value_scale": [1.0]})
    cases: dict[str, tuple[Callable[[], Any], type[Exception] | None, str]] = {}

    raw = bytearray(good.read_bytes())
    at = raw.index(b'omegas\\": [30.0') + len(b'omegas\\": [')  # inside the escaped metadata string
    raw[at] ^= 0x02  # '3' -> '1': omega 30 -> 10, one bit
    (folder / "flip.safetensors").write_bytes(bytes(raw))
    cases["one-bit flip in omegas"] = (lambda: load_model(folder / "flip.safetensors"), InvalidFileError, "checksum")

    nan = _rewrite_header(good, lambda h: h.update(omegas=[float("nan")] * 3))
    cases["NaN omegas (re-signed)"] = (lambda: load_model(nan), InvalidFileError, "omegas")
    text = good.read_bytes()
    n = struct.unpack("<Q", text[:8])[0]
    meta_text = json.loads(text[8: 8 + n])["__metadata__"]["inrkit"]
    digits = _rewrite_header(good, lambda h: None, False, meta_text.replace('"signal": {', '"big": ' + "7" * 5000
                                                                            + ', "signal": {', 1))
    cases["5000-digit integer in the header"] = (lambda: load_model(digits), InvalidFileError, "number")
    deep = _rewrite_header(good, lambda h: None, False,
                           meta_text.replace('"extra": {', '"extra": {"deep": ' + "[" * 1000 + "]" * 1000 + ", ", 1))
    cases["metadata nested 1000 deep"] = (lambda: load_model(deep), InvalidFileError, "nested")
    cases["saving metadata nested 1000 deep"] = (
        lambda: save_model(model, folder / "deep-out.safetensors", extra={"d": nested(1000)}), InvalidInputError,
        "nested")
    cases["saving metadata nested 100 deep"] = (
        lambda: save_model(model, folder / "deep-out.safetensors", extra={"d": nested(100)}), InvalidInputError,
        "nested")

    norm = {"channels": 1, "value_offset": [0.0], "value_scale": [1.0]}
    for label, kind in (("signal.shape 100000^2 (image)", {"kind": "image"}),
                        ("signal.shape 100000^2 (field)", {"kind": "field"}), ("signal.shape 100000^2 (no kind)", {})):
        signal = {**kind, "shape": [100000, 100000], **norm}
        path = _rewrite_header(good, lambda h, s=signal: h.update(signal=s))
        cases[label] = (lambda p=path: render_file(p, folder / "out.png"), InvalidFileError, "shape")
    cases["render --size 100000,100000"] = (lambda: render_file(good, folder / "out.png", [100000, 100000]),
                                            InvalidInputError, "render size")
    cases["render --size 60000,60000"] = (lambda: render_file(good, folder / "out.png", [60000, 60000]),
                                          InvalidInputError, "points")

    nerf_cfg = NeRFConfig(pos_freqs=1, dir_freqs=1, trunk_widths=[4, 4], skips=[0], feature_width=4, view_widths=[4])
    nerf_file = save_model(NeRFMLP(nerf_cfg, seed=0), folder / "n.safetensors")
    wide = {"trunk_widths": [12000] * 8, "skips": [4], "feature_width": 12000, "view_widths": [6000]}
    crafted_nerf = _rewrite_header(nerf_file, lambda h: h["nerf"].update(wide), resign=False)
    cases["NeRF header widths 12000"] = (lambda: load_model(crafted_nerf), InvalidFileError, "NeRF")

    ck = folder / "ck.safetensors"
    save_checkpoint(ck, NeRFMLP(nerf_cfg, seed=0), torch.optim.Adam(NeRFMLP(nerf_cfg).parameters()),
                    torch.Generator(), step=1, seconds=0.0, history=[], config={})
    crafted_ck = _rewrite_checkpoint(ck, lambda m: m["model"]["nerf"].update(wide))
    cases["NeRF checkpoint widths 12000"] = (lambda: load_checkpoint(crafted_ck), InvalidFileError, "NeRF")
    cases["NeRFMLP(widths 12000)"] = (lambda: NeRFMLP(NeRFConfig(**wide)), InvalidInputError, "NeRF")
    cases["MLP hidden 100000x3"] = (lambda: siren(2, 1, [100000] * 3), InvalidInputError, "too large")

    def npz_with(member: bytes, name: str = "W0.npy", method: int = zipfile.ZIP_STORED) -> Path:
        path = folder / f"npz-{len(cases)}.npz"
        members = {"W0.npy": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }",
                                       bytes(4)),
                   "b0.npy": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", bytes(4)),
                   "activations.npy": npy_bytes("{'descr': '<U8', 'fortran_order': False, 'shape': (1,), }",
                                                "identity".encode("utf-32-le"))}
        members[name] = member
        path.write_bytes(zip_bytes(members, method))
        return path

    huge = npz_with(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }"))
    cases[".npy header claiming 2^40 elements"] = (lambda: load_model(huge), InvalidFileError, "elements")
    token = npz_with(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': '''"))
    cases[".npy header with an unterminated string"] = (lambda: load_model(token), InvalidFileError, "")
    bomb = folder / "bomb.npz"
    header = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 16777216), }")
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("W0.npy", "w") as member:
            member.write(header)
            zeros = bytes(1 << 20)
            for _ in range(128):
                member.write(zeros)
        archive.writestr("b0.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", bytes(4)))
        archive.writestr("activations.npy", npy_bytes("{'descr': '<U4', 'fortran_order': False, 'shape': (1,), }",
                                                      "relu".encode("utf-32-le")))
    cases[".npz zip bomb (128 MiB of zeros)"] = (lambda: load_model(bomb), InvalidFileError, "inflates")
    bad_zlib = bytearray(zip_bytes({"W0.npy": bytes(range(256)) * 64}, zipfile.ZIP_DEFLATED))
    bad_zlib[60:70] = b"\xff" * 10
    (folder / "zlib.npz").write_bytes(bytes(bad_zlib))
    cases[".npz with a damaged deflate stream"] = (lambda: load_model(folder / "zlib.npz"), InvalidFileError, "")
    method = bytearray(zip_bytes({"W0.npy": b"x" * 100}))
    method[8:10] = struct.pack("<H", 99)  # an unknown compression method (local header) ...
    cd = method.rindex(b"PK\x01\x02")
    method[cd + 10: cd + 12] = struct.pack("<H", 99)  # ... and in the central directory
    (folder / "method.npz").write_bytes(bytes(method))
    cases[".npz with an unsupported compression method"] = (lambda: load_model(folder / "method.npz"),
                                                             InvalidFileError, "")
    encrypted = bytearray(zip_bytes({"W0.npy": b"x" * 100}))
    encrypted[6] |= 1  # the "encrypted" flag (local header) ...
    encrypted[encrypted.rindex(b"PK\x01\x02") + 8] |= 1  # ... and in the central directory
    (folder / "encrypted.npz").write_bytes(bytes(encrypted))
    cases[".npz with an encrypted member"] = (lambda: load_model(folder / "encrypted.npz"), InvalidFileError, "")
    cases["a valid model (for scale)"] = (lambda: load_model(good), None, "")
    return cases


def _rewrite_checkpoint(path: Path, edit: Callable[[dict], Any]) -> Path:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    outer = json.loads(data[8: 8 + n])
    meta = json.loads(outer["__metadata__"]["inrkit-checkpoint"])
    edit(meta)
    outer["__metadata__"]["inrkit-checkpoint"] = json.dumps(meta)
    out = path.with_name("crafted-" + path.name)
    out.write_bytes(st_bytes(outer, data[8 + n:]))
    return out


def run_crafted(folder: Path) -> dict[str, dict[str, Any]]:
    """Every crafted case in its own child: outcome, CPU seconds and peak memory (MiB)."""
    results = {}
    cases = crafted_cases(folder)  # built once here; each child inherits them through fork
    for name in cases:
        def job(meter: Meter, name: str = name) -> None:
            run, error, fragment = cases[name]
            meter.run(run)
            outcome = next(iter(meter.outcomes))
            expected = "loaded" if error is None else error.__name__
            assert outcome == expected, f"{name}: {outcome}, expected {expected}"
            if error is not None and fragment:
                with pytest.raises(error, match=fragment):
                    try:
                        run()
                    except error as exc:
                        raise error(f"{name}: {exc}") from None

        report = in_child(job)
        results[name] = {"outcome": next(iter(report["outcomes"])), "cpu_s": report["worst_cpu_s"],
                         "peak_mib": report["worst_peak_mib"]}
    return results


def test_crafted_files_refused_within_limits(tmp_path):
    results = run_crafted(tmp_path)
    width = max(len(n) for n in results)
    for name, r in results.items():
        print(f"{name:<{width}}  {r['outcome']:<17} {r['cpu_s']:.3f} s  {r['peak_mib']:.1f} MiB")
    assert all(r["cpu_s"] <= CPU_LIMIT_S and r["peak_mib"] <= MEMORY_LIMIT >> 20 for r in results.values())


if __name__ == "__main__":  # the headline numbers: python tests/test_fuzz_models.py
    import tempfile

    for test in (test_fuzz_safetensors_mutations, test_fuzz_safetensors_headers, test_fuzz_safetensors_containers,
                 test_fuzz_npz_members, test_fuzz_npz_mutations):
        test()
    with tempfile.TemporaryDirectory() as tmp:
        test_crafted_files_refused_within_limits(Path(tmp))
    sys.exit(0)
