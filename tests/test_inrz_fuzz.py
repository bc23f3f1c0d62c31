"""Fuzzing the .inrz decoder under a memory and CPU-time limit, and crafted hostile files (docs/limits.md).

Every input is decoded in a worker process whose address space is limited to its size after start-up plus
512 MiB (``resource.setrlimit(RLIMIT_AS)``), and whose CPU time per input (``time.process_time``) must stay
under 2 s: a giant allocation or a slow input fails the test. An input may decode or raise
``InvalidFileError``; anything else is an unclean outcome and fails the test. About 6,000 inputs from 600
examples per test by default (most tests decode two or three inputs per example); ``INRKIT_FUZZ_EXAMPLES=N``
runs N per test. ``python tests/test_inrz_fuzz.py`` runs the file and prints the headline numbers (inputs,
outcome classes, the crafted files' CPU time and peak memory).
"""
from __future__ import annotations

import base64
import collections
import json
import math
import os
import pickle
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import weakref
import zlib
from pathlib import Path
from typing import Any

import brotli
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inrkit import limits
from inrkit.compress import compress_model, decode_model, entropy, pack
from inrkit.compress.decode import dictionary as dictionary_module
from inrkit.compress.decode.coding import encode_bitmask, encode_gaps
from inrkit.compress.decode.container import dump_value, unpack, writing_version
from inrkit.compress.decode.dictionary import GENERATOR_NAME
from inrkit.compress.encode.api import render_cost
from inrkit.compress.encode.image import decode_image
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models import siren

EXAMPLES = int(os.environ.get("INRKIT_FUZZ_EXAMPLES", "600"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
META = {"kind": "image", "shape": [8, 8], "channels": 3, "domain": [[-1, 1], [-1, 1]],
        "value_offset": [127.5] * 3, "value_scale": [127.5] * 3}
MEMORY = 512 * 2**20  # address space an input may add to the worker
CPU_SECONDS = 2.0  # CPU time an input may take

# ------------------------------------------------------------------ the limited worker
WORKER = r"""
import os, pickle, resource, sys, tempfile, time
kind, memory, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
from inrkit.compress.decode.decoder import decode
from inrkit.errors import InvalidFileError
if kind == "image":
    from inrkit.compress.encode.api import render_cost
    from inrkit.compress.encode.image import decode_image
    import torch
    torch.set_num_threads(1)

def vm(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0

base_rss = vm("VmRSS:")
resource.setrlimit(resource.RLIMIT_AS, (vm("VmSize:") + memory, resource.getrlimit(resource.RLIMIT_AS)[1]))
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = inp.read(8)
    if len(head) < 8:
        break
    data = inp.read(int.from_bytes(head, "little"))
    try:  # reset the peak-RSS mark (VmHWM) so that it measures this input alone
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base_rss = vm("VmRSS:")
    except OSError:
        pass
    t0 = time.process_time()
    try:
        if kind == "image":
            path = os.path.join(folder, "in.inrz")
            with open(path, "wb") as f:
                f.write(data)
            decode_image(path, os.path.join(folder, "out.png"))
        else:
            decode(data)
        result = ("decoded", "")
    except InvalidFileError as exc:
        result = ("refused", str(exc))
    except BaseException as exc:
        result = ("unclean", f"{type(exc).__name__}: {str(exc)[:300]}")
    cpu = time.process_time() - t0
    peak = vm("VmHWM:") - base_rss
    reply = pickle.dumps(result + (cpu, peak))
    out.write(len(reply).to_bytes(8, "little") + reply)
    out.flush()
"""

STATS: collections.Counter[str] = collections.Counter()
CRAFTED: dict[str, tuple[str, float, int]] = {}


class Worker:
    """A decoder process with an address-space limit; ``run(data)`` -> (outcome, message, cpu_s, peak_bytes)."""

    def __init__(self, kind: str = "model") -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.folder = tempfile.mkdtemp(prefix="inrkit-inrz-")  # the worker's files; removed by close() ...
        weakref.finalize(self, shutil.rmtree, self.folder, True)  # ... or when the worker is collected
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, kind, str(MEMORY), self.folder],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def run(self, data: bytes, timeout: float = 120.0) -> tuple[str, str, float, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(len(data).to_bytes(8, "little") + data)
        self.proc.stdin.flush()
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            self.proc.kill()
            raise AssertionError(f"the decoder did not return within {timeout} s")
        head = self.proc.stdout.read(8)
        if len(head) < 8:
            raise AssertionError(f"the decoder process died (exit {self.proc.wait()})")
        return pickle.loads(self.proc.stdout.read(int.from_bytes(head, "little")))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


_WORKER: dict[str, Worker] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_workers() -> Any:
    """Stop the decoder processes (and remove their folders) when the module ends, however it was run."""
    yield
    for w in _WORKER.values():
        w.close()
    _WORKER.clear()


def worker(kind: str = "model") -> Worker:
    """The shared worker of ``kind`` (``model``: the NumPy decoder; ``image``: ``decode_image``)."""
    if kind not in _WORKER:
        _WORKER[kind] = Worker(kind)
    return _WORKER[kind]


def category(message: str) -> str:
    """A coarse class of a refusal, for the summary."""
    for key, words in [("work beyond the file's size", ("justif", "distinct dictionaries", "-entry dictionary")),
                       ("checksum or length", ("checksum", "exceeds the file", "only", "magic", "version")),
                       ("compressed stream", ("compressed stream", "Brotli", "expands", "implausible")),
                       ("v2 entropy-coded section", ("range-coded", "coding method", "bit-packed", "stored .inrz",
                                                     "empty .inrz section", "model parameter")),
                       ("v2 binary header or index", ("varint", "tag", "string id", "trailing bytes", "repeats",
                                                      "quantiser", "UTF-8", "truncated", "nests")),
                       ("JSON", ("JSON",)), ("payload", ("payload", "support", "quantised", "sections")),
                       ("header field", ("header",)), ("values", ("non-finite",))]:
        if any(w in message for w in words):
            return key
    return "other"


def check(data: bytes) -> None:
    """The decoder may succeed or raise InvalidFileError within the limits; anything else fails the test."""
    outcome, message, cpu, _ = worker().run(data)
    STATS["inputs"] += 1
    STATS[outcome if outcome != "refused" else f"refused: {category(message)}"] += 1
    assert outcome != "unclean", message
    assert cpu <= CPU_SECONDS, f"{cpu:.2f} s of CPU for one input"
    if outcome == "refused":
        assert message and "\n" not in message


def _samples(version: int) -> dict[str, bytes]:
    model = siren(2, 3, [12, 56, 8], generator=torch.Generator().manual_seed(0))  # blocks and rows layers
    with writing_version(version):
        return {
            "sinr": compress_model(model, "sinr", sparsity=0.3, bits=6, code_first=True, signal=META),
            "sinr-bitmask": compress_model(model, "sinr", sparsity=0.45, overcomplete=1.2, signal=META),
            "quant": compress_model(model, "quant", bits=5, signal=META),
            "quant12": compress_model(model, "quant", bits=12, signal=META),
            "quant-rows": compress_model(model, "quant", bits=5, per_row=True, row_bits=6, signal=META),
            "coin": compress_model(model, "coin", signal=META),
        }


SAMPLES = _samples(1)  # the v1 container (JSON header, Brotli sections): split/build below edit it
NAMES = sorted(SAMPLES)
SAMPLES_V2 = _samples(2)  # the v2 container (binary header, entropy-coded sections)
NAMES_V2 = sorted(SAMPLES_V2)
ALL = {**{f"v1-{k}": v for k, v in SAMPLES.items()}, **{f"v2-{k}": v for k, v in SAMPLES_V2.items()}}
ALL_NAMES = sorted(ALL)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack_from("<I", data, 5)[0]
    return json.loads(brotli.decompress(data[9 : 9 + n])), data[9 + n : -4]


def build(header_text: bytes, payload: bytes, head_len: int | None = None) -> bytes:
    head = brotli.compress(header_text, quality=5)
    n = len(head) if head_len is None else head_len
    return with_crc(b"INRZ\x01" + struct.pack("<I", n) + head + payload)


def leaf_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaf_paths(v, prefix + (k,))
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            yield from leaf_paths(v, prefix + (i,))
    yield prefix


def set_path(obj, path, value):
    if not path:
        return value
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return obj


ABSURD = st.one_of(
    st.sampled_from([-1, 0, 1, 2, 3, 7, 8, 50, 65536, 2**31, 2**63, 10**30, -(10**30), 1e308, -1e308, 0.5,
                     True, False, None, "", "sinr", "rows", "blocks", "gaps", "bitmask", "x" * 100, [], {},
                     [0], [1, 2], [2, 65536, 65536, 3], [0.0, 1e300], [-1, 0], {"kind": "image"}]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(-5, 70000), max_size=6),
)


def test_valid_samples_decode():
    for name in ALL_NAMES:
        model, header = decode_model(ALL[name])
        assert header["signal"] == META and model.widths == [2, 12, 56, 8, 3]
    assert all(data[4] == 2 for data in SAMPLES_V2.values()) and all(data[4] == 1 for data in SAMPLES.values())


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(data, magic):
    check((b"INRZ\x01" + data) if magic else data)
    check(with_crc(b"INRZ\x01" + data))
    check(with_crc(b"INRZ\x02" + data))


@FUZZ
@given(st.sampled_from(ALL_NAMES), st.integers(0, 10**6), st.booleans())
def test_truncations(name, cut, fix_crc):
    data = ALL[name]
    cut %= len(data)
    check(data[:cut])
    if fix_crc and cut > 4:
        check(with_crc(data[: cut - 4]))


@FUZZ
@given(st.sampled_from(ALL_NAMES), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1,
                                            max_size=4), st.booleans())
def test_bit_flips(name, flips, fix_crc):
    data = bytearray(ALL[name])
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    check(bytes(data))
    if fix_crc:
        check(with_crc(bytes(data[:-4])))  # gets past the checksum into every field


@FUZZ
@given(st.sampled_from(NAMES), st.data())
def test_header_field_mutations(name, data):
    header, payload = split(SAMPLES[name])
    paths = list(leaf_paths(header))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        try:
            header = set_path(header, path, json.loads(json.dumps(data.draw(ABSURD))))  # a fresh copy
        except (TypeError, IndexError, KeyError):
            pass
        paths = list(leaf_paths(header)) if isinstance(header, (dict, list)) else [()]
    check(build(json.dumps(header).encode(), payload))


@FUZZ
@given(st.sampled_from(NAMES), st.integers(0, 10**6), st.binary(min_size=1, max_size=8))
def test_payload_mutations(name, pos, junk):
    header, payload = split(SAMPLES[name])
    text = json.dumps(header).encode()
    pos %= max(len(payload), 1)
    check(build(text, payload[:pos] + junk + payload[pos + len(junk):]))  # overwrite
    check(build(text, payload[:pos] + junk + payload[pos:]))  # insert (sizes no longer add up)


@FUZZ
@given(st.sampled_from(NAMES), st.integers(0, 2**32 - 1),
       st.sampled_from([b"[", b"{\"a\":", b"NaN", b"1e999", b"\xff"]))
def test_absurd_lengths_and_raw_json(name, head_len, text):
    header, payload = split(SAMPLES[name])
    check(build(json.dumps(header).encode(), payload, head_len=head_len))
    check(build(text * 2000, payload))  # deep nesting, non-finite numbers, bad UTF-8


@FUZZ
@given(st.booleans(), st.sampled_from(["row_bits", "bits", "wr", "b"]), st.integers(0, 3), ABSURD,
       st.integers(0, 6), st.binary(max_size=6))
def test_per_row_fields(v2, field, layer, value, section, junk):
    """The per-row quantiser's fields (``params.row_bits``, ``layers[i].wr``) and its sections, in v1 and v2."""
    header, sections = split_v2("quant-rows") if v2 else (split(SAMPLES["quant-rows"])[0], None)
    target = header["params"] if field in ("row_bits", "bits") else header["layers"][layer % 3]
    target[field] = json.loads(json.dumps(value))
    if v2:
        sections = list(sections)
        sections[section] = sections[section][: len(junk)] + junk if junk else sections[section]
        try:
            check(build_v2(dump_value(header), sections))
        except InvalidInputError:
            pass  # a value the v2 header cannot hold
    else:
        header.pop("sizes")
        check(pack(header, unpack(SAMPLES["quant-rows"])[1], version=1))


# ------------------------------------------------------------------ container v2
def build_v2(head: bytes, sections: list[bytes], count: int | None = None) -> bytes:
    """A v2 file from raw header bytes and sections (``count`` overrides the section count)."""
    index = entropy.write_varint(len(sections) if count is None else count)
    index += b"".join(entropy.write_varint(len(x)) for x in sections[:-1])
    return with_crc(b"INRZ\x02" + entropy.write_varint(len(head)) + head + index + b"".join(sections))


def split_v2(name: str) -> tuple[dict, list[bytes]]:
    header, sections = unpack(SAMPLES_V2[name])
    header.pop("sizes")
    return header, sections


@FUZZ
@given(st.sampled_from(NAMES_V2), st.data())
def test_v2_header_field_mutations(name, data):
    header, sections = split_v2(name)
    paths = list(leaf_paths(header))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        try:
            header = set_path(header, path, json.loads(json.dumps(data.draw(ABSURD))))
        except (TypeError, IndexError, KeyError):
            pass
        paths = list(leaf_paths(header)) if isinstance(header, (dict, list)) else [()]
    try:
        head = dump_value(header)
    except InvalidInputError:
        return  # not storable (e.g. an integer beyond 64 bits): the writer refuses it
    check(build_v2(head, sections))


@FUZZ
@given(st.sampled_from(NAMES_V2), st.integers(0, 10**6), st.binary(min_size=1, max_size=12), st.integers(0, 3))
def test_v2_header_bytes_and_index(name, pos, junk, mode):
    """Raw header bytes overwritten/inserted, absurd section counts and sizes, absurd header lengths."""
    header, sections = split_v2(name)
    head = dump_value(header)
    pos %= len(head)
    if mode == 0:
        check(build_v2(head[:pos] + junk + head[pos + len(junk):], sections))
    elif mode == 1:
        check(build_v2(head[:pos] + junk + head[pos:], sections))
    elif mode == 2:
        check(build_v2(head, sections, count=int.from_bytes(junk[:8], "little")))
    else:
        body = b"INRZ\x02" + junk + head + b"".join(sections)
        check(with_crc(body))


@FUZZ
@given(st.sampled_from(NAMES_V2), st.data(), st.binary(min_size=1, max_size=8), st.booleans())
def test_v2_section_mutations(name, data, junk, insert):
    """Entropy-coded sections with bytes overwritten or inserted (method bytes, model parameters, words)."""
    header, sections = split_v2(name)
    i = data.draw(st.integers(0, len(sections) - 1))
    sec = sections[i]
    pos = data.draw(st.integers(0, max(len(sec) - 1, 0)))
    sections[i] = sec[:pos] + junk + sec[pos + (0 if insert else len(junk)):]
    check(build_v2(dump_value(header), sections))


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 5000), st.integers(1, 16), st.sampled_from([0, 1, 2, 3, 4, 5, 9]))
def test_entropy_decoder_on_random_sections(body, count, bits, method):
    """The section decoder alone: random bodies under every method give codes in range or InvalidFileError."""
    try:
        raw = entropy.decode_bytes(bytes([(method + 5) % 6]) + body, count)  # stored, brotli, varints, unknown
        assert len(raw) == count
    except InvalidFileError:
        pass
    try:
        codes = entropy.decode_codes(bytes([method]) + body, count, bits)
    except InvalidFileError:
        return
    assert codes.shape == (count,) and (count == 0 or (codes.min() >= 0 and codes.max() < 1 << bits))


def test_v2_range_coded_bombs():
    """A few bytes of range coding that claim many codes: decoded within the limits or refused by the size rule."""
    def quant_file(width: int) -> bytes:
        n = 3 * width + width * width + 1
        peaked = bytes([entropy.LAPLACE]) + entropy.param_for(0.5).to_bytes(2, "little") + entropy.write_varint(0)
        header = {"format": "inrz-mlp", "codec": "quant",
                  "model": {"widths": [2, width, width, 1], "activations": ["sine", "sine", "identity"],
                            "omegas": [30.0] * 3, "fourier": None},
                  "params": {"bits": 16}, "layers": [{"w": [0.0, 1e-3], "b": [0.0, 1e-3]}] * 3, "signal": {},
                  "extra": {}}
        assert n > 0
        return pack(header, [peaked + b"\0" * 4] * 6, version=2)

    for width, expected in ((700, "decoded"), (3000, "refused")):
        w = Worker()
        try:
            outcome, message, cpu, peak = w.run(quant_file(width))
        finally:
            w.close()
        CRAFTED[f"v2 range-coded zeros, {width}x{width}"] = (f"{outcome} ({len(quant_file(width))} bytes)", cpu, peak)
        assert outcome == expected, message
        assert cpu <= CPU_SECONDS and peak <= MEMORY, (cpu, peak)


@pytest.mark.parametrize("widths", [[2, 65536, 65536, 3], [2, 4096, 4096, 4096, 3], [2] + [5000] * 5 + [3]])
def test_absurd_architecture_allocates_nothing(widths):
    header, payload = split(SAMPLES["sinr"])
    header["model"]["widths"] = widths
    header["model"]["activations"] = ["sine"] * (len(widths) - 2) + ["identity"]
    header["model"]["omegas"] = [30.0] * (len(widths) - 1)
    header["layers"] = [header["layers"][0]] * (len(widths) - 1)
    w = Worker()
    try:
        outcome, message, cpu, peak = w.run(build(json.dumps(header).encode(), payload))
    finally:
        w.close()
    assert outcome == "refused" and cpu < 0.5 and peak < 32 * 2**20, (outcome, message, cpu, peak)


# ------------------------------------------------------------------ crafted files (docs/limits.md)
def _section(raw: bytes, quality: int = 11, version: int = 1) -> bytes:
    return (b"" if version == 1 else bytes([entropy.BROTLI])) + brotli.compress(raw, quality=quality)


def sinr_file(widths: list[int], coded: dict[int, tuple[str, int, int, int]], *, pad: int = 0,
              signal: dict | None = None, support: str = "gaps", quality: int = 11, version: int = 1) -> bytes:
    """A valid ``sinr`` file of constant streams; ``coded[i] = (mode, k1, k2, s)``, ``pad`` random bytes in extra."""
    records, sections = [], []
    for i in range(len(widths) - 1):
        out, inp = widths[i + 1], widths[i]
        rec: dict[str, Any] = {}
        if i in coded:
            mode, k1, k2, s = coded[i]
            n = out if mode == "rows" else math.ceil(out * inp / k1)
            idx = np.tile(np.arange(s), (n, 1))
            if support == "gaps":
                gaps = encode_gaps(idx)
                sections.append(_section(gaps, quality, version))
                rec.update(support="gaps", support_bytes=len(gaps))
            else:
                sections.append(_section(encode_bitmask(idx, k2), quality, version))
                rec.update(support="bitmask")
            sections.append(_section(np.ones(n * s, np.uint8).tobytes(), quality, version))
            rec.update(mode=mode, k1=k1, k2=k2, s=s, coef=[0.0, 0.001])
        else:
            sections.append(_section(bytes(out * inp), quality, version))
            rec["w"] = [0.0, 0.0]
        sections.append(_section(bytes(out), quality, version))
        rec["b"] = [0.0, 0.0]
        records.append(rec)
    n = len(widths) - 1
    extra = {"pad": base64.b64encode(np.random.default_rng(0).bytes(pad)).decode()} if pad else {}
    header = {"format": "inrz-mlp", "codec": "sinr",
              "model": {"widths": widths, "activations": ["sine"] * (n - 1) + ["identity"],
                        "omegas": [30.0] * n, "fourier": None},
              "params": {"bits": 8, "dense_bits": 8, "seed": 0, "generator": GENERATOR_NAME},
              "layers": records, "signal": signal or {}, "extra": extra}
    return pack(header, sections, version=version)


def image_meta(h: int, w: int, channels: int = 1) -> dict:
    return {"kind": "image", "shape": [h, w], "channels": channels, "domain": [[-1, 1], [-1, 1]],
            "value_offset": [127.5] * channels, "value_scale": [127.5] * channels}


def _dictionary_bomb() -> bytes:  # 4096 x 4096 float64 dictionary from a few hundred bytes
    return sinr_file([2, 4096, 1, 1], {1: ("rows", 4096, 4096, 1)})


def _forty_dictionaries() -> bytes:  # 40 distinct dictionaries near 2^24 entries each
    widths = [2] + [64] * 41 + [1]
    return sinr_file(widths, {i: ("blocks", 1000 + 60 * i, (1 << 24) // (1000 + 60 * i), 1) for i in range(1, 41)})


def _thirty_dictionaries() -> bytes:  # under the count limit, far over the entry budget
    widths = [2] + [64] * 31 + [1]
    return sinr_file(widths, {i: ("blocks", 1000 + 60 * i, (1 << 24) // (1000 + 60 * i), 1) for i in range(1, 31)})


def _omp_bomb() -> bytes:  # k1 = k2 = 4096, s = 4095 over 4096 vectors, padded to about 93 KB
    return sinr_file([2, 4096, 4096, 1], {1: ("rows", 4096, 4096, 4095)}, pad=93_000, support="bitmask")


def _huge_image() -> bytes:  # a few hundred bytes asking `decode` for a 30000 x 30000 image
    return sinr_file([2, 8, 8, 1], {}, signal=image_meta(30000, 30000))


def _big_image() -> bytes:  # 8192 x 8192 passes the header's shape check but not the file-size rule
    return sinr_file([2, 8, 8, 1], {}, signal=image_meta(8192, 8192))


def _costly_render() -> bytes:  # a sane-sized image rendered by a wide network: too much render work
    return sinr_file([2, 1024, 1024, 1], {}, signal=image_meta(2048, 2048))


def _constant_stream() -> bytes:  # 1 MiB of constant 16-bit codes in about 30 bytes of Brotli
    header = {"format": "inrz-mlp", "codec": "quant",
              "model": {"widths": [2, 724, 724, 1], "activations": ["sine", "sine", "identity"],
                        "omegas": [30.0] * 3, "fourier": None},
              "params": {"bits": 16}, "layers": [{"w": [0.0, 0.0], "b": [0.0, 0.0]}] * 3, "signal": {}, "extra": {}}
    sizes = [2 * 724 * 2, 2 * 724, 2 * 724 * 724, 2 * 724, 2 * 724, 2]
    return pack(header, [_section(bytes(n)) for n in sizes], version=1)


def _worst_allowed() -> bytes:
    """A 93 KB file that asks for almost all the dictionary and reconstruction work its size justifies."""
    def make(k2a: int, k2b: int, s: int) -> bytes:
        return sinr_file([2, 1024, 1024, 1024, 1], {1: ("rows", 1024, k2a, s), 2: ("rows", 1024, k2b, s)}, pad=93_000)

    size = len(make(1024, 1024, 1)) - 64
    entries = limits.inrz_budget(limits.INRZ_DICT_FREE, limits.INRZ_DICT_PER_BYTE, size)
    recon = limits.inrz_budget(limits.INRZ_RECON_FREE, limits.INRZ_RECON_PER_BYTE, size)
    k2a = min(entries // 2 // 1024, (1 << 14) - 1)
    k2b = min((entries - 1024 * k2a) // 1024, (1 << 14) - 1)
    s = (recon - 1024 * (k2a + k2b)) // (2 * 1024 * 1024)
    return make(k2a, k2b, min(s, 1023))


@settings(FUZZ, max_examples=max(EXAMPLES // 10, 20))
@given(st.data())
def test_structured_sinr_files(data):
    """Valid files (right CRC, in-range fields) with random architectures, dictionaries, sparsity and padding."""
    widths = [2] + [data.draw(st.sampled_from([8, 50, 64, 200, 256, 1024, 2048, 4096]))
                    for _ in range(data.draw(st.integers(2, 5)))] + [1]
    coded = {}
    for i in range(1, len(widths) - 2):
        out, inp = widths[i + 1], widths[i]
        if not data.draw(st.booleans()):
            continue
        mode = "rows" if inp >= 50 and data.draw(st.booleans()) else "blocks"
        k1 = inp if mode == "rows" else data.draw(st.integers(3, min(out * inp, (1 << 14) - 2)))
        k2 = data.draw(st.integers(k1, max(k1, min((1 << 14) - 1, (1 << 25) // k1))))
        n = out if mode == "rows" else math.ceil(out * inp / k1)
        s = data.draw(st.integers(1, max(1, min(k1 - 1, (1 << 20) // n))))
        coded[i] = (mode, k1, k2, s)
    if any(widths[i] * widths[i + 1] > 1 << 22 for i in range(len(widths) - 1) if i not in coded):
        return  # keep the test's own work small
    pad = data.draw(st.sampled_from([0, 3000, 60_000]))
    support = data.draw(st.sampled_from(["gaps", "bitmask"]))
    check(sinr_file(widths, coded, pad=pad, support=support, quality=1, version=data.draw(st.sampled_from([1, 2]))))


def _worst_render() -> bytes:
    """A few hundred bytes asking `decode` for almost all the render work a small file is allowed."""
    widths = [2, 360, 360, 1]
    size = len(sinr_file(widths, {}, signal=image_meta(1000, 1000))) - 16
    budget = limits.inrz_budget(limits.INRZ_RENDER_FREE, limits.INRZ_RENDER_PER_BYTE, size)
    side = math.isqrt(budget // render_cost(widths))
    return sinr_file(widths, {}, signal=image_meta(side, side))


def _worst_pixels() -> bytes:
    """A tiny network asked for almost all the pixels a small file is allowed."""
    side = math.isqrt(limits.INRZ_PIXELS_FREE)
    return sinr_file([2, 4, 1], {}, signal=image_meta(side, side))


CRAFTED_FILES = {
    "dictionary 4096x4096": ("model", _dictionary_bomb, "refused"),
    "40 dictionaries": ("model", _forty_dictionaries, "refused"),
    "30 dictionaries": ("model", _thirty_dictionaries, "refused"),
    "k1=k2=4096, s=4095": ("model", _omp_bomb, "refused"),
    "constant Brotli stream": ("model", _constant_stream, "refused"),
    "v2 dictionary 4096x4096": ("model", lambda: sinr_file([2, 4096, 1, 1], {1: ("rows", 4096, 4096, 1)}, version=2),
                                "refused"),
    "v2 k1=k2=4096, s=4095": ("model", lambda: sinr_file([2, 4096, 4096, 1], {1: ("rows", 4096, 4096, 4095)},
                                                         pad=93_000, support="bitmask", version=2), "refused"),
    "worst allowed (93 KB)": ("model", _worst_allowed, "decoded"),
    "image 30000x30000 (decode)": ("image", _huge_image, "refused"),
    "image 8192x8192 (decode)": ("image", _big_image, "refused"),
    "image 2048x2048, 1024-wide (decode)": ("image", _costly_render, "refused"),
    "image, worst allowed render (decode)": ("image", _worst_render, "decoded"),
    "image, worst allowed pixels (decode)": ("image", _worst_pixels, "decoded"),
    "image 2048x2048 from an 800-byte file (decode)": ("image", lambda: sinr_file([2, 16, 16, 3], {},
                                                                                  signal=image_meta(2048, 2048)),
                                                       "refused"),
}


@pytest.mark.parametrize("name", list(CRAFTED_FILES))
def test_crafted_file_is_decoded_or_refused_within_limits(name):
    kind, make, expected = CRAFTED_FILES[name]
    data = make()
    if kind == "model":  # a fresh process, so that its peak memory is this file's alone
        w = Worker(kind)
        try:
            outcome, message, cpu, peak = w.run(data)
        finally:
            w.close()
    else:  # refused before any work; one process imports torch once for all of them
        outcome, message, cpu, peak = worker(kind).run(data)
    CRAFTED[name] = (f"{outcome} ({len(data)} bytes)", cpu, peak)
    assert outcome == expected, message
    assert cpu <= CPU_SECONDS and peak <= MEMORY, (cpu, peak)


def test_crafted_sizes_match_the_issue():
    assert len(_dictionary_bomb()) < 600 and len(_forty_dictionaries()) < 4000 and len(_huge_image()) < 400
    assert 90_000 < len(_omp_bomb()) < 100_000 and 90_000 < len(_worst_allowed()) < 100_000


def test_decode_checks_the_image_before_any_dictionary(tmp_path: Path, monkeypatch):
    def no_dictionary(*args):
        raise AssertionError("a dictionary was built")

    monkeypatch.setattr(dictionary_module, "_generate", no_dictionary)
    dictionary_module.clear_cache()
    coded = {1: ("rows", 256, 2048, 10)}
    for signal in ({"kind": "volume", "shape": [8, 8, 8], "channels": 1}, {}, image_meta(8192, 8192)):
        path = tmp_path / "x.inrz"
        path.write_bytes(sinr_file([2, 256, 256, 1], coded, signal=signal))
        with pytest.raises(InvalidFileError):
            decode_image(path, tmp_path / "x.png")


def test_dictionary_cache_is_bounded_in_bytes():
    cache = dictionary_module._Cache(10 * 2**20)
    for i in range(8):  # 8 arrays of 2 MiB: the oldest go
        cache.get(("a", i), lambda: np.zeros(1 << 18))
        assert cache.nbytes() <= 10 * 2**20
    assert ("a", 7) in cache.items and ("a", 0) not in cache.items
    assert cache.get(("big",), lambda: np.zeros(1 << 21)).size == 1 << 21 and ("big",) not in cache.items
    dictionary_module.clear_cache()
    for k2 in range(4096, 4096 + 10):  # 10 real dictionaries of 8 MiB: 80 MiB if all were kept
        dictionary_module.sensing_matrix(256, k2, 0)
        assert dictionary_module.cache_bytes() <= limits.INRZ_CACHE_BYTES
    dictionary_module.clear_cache()


def test_encoder_never_writes_a_file_the_decoder_refuses():
    model = siren(2, 3, [64, 64], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.weights[1].zero_()  # a constant 64x64 layer compresses ~1000x: still under the free allowance
    decode_model(compress_model(model, "quant", bits=16))
    big = siren(2, 1, [600, 600], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        big.weights[1].zero_()  # 600 x 600 constant 16-bit codes (720 KB in ~30 bytes): beyond the ratio guard
    with pytest.raises(InvalidInputError), writing_version(1):
        compress_model(big, "quant", bits=16)
    # v2 range-codes (or bit-packs) the constant layer: no Brotli stream, the size rule alone bounds the work
    data = compress_model(big, "quant", bits=16)
    assert data[4] == 2 and np.all(decode_model(data)[0].weights[1].detach().numpy() == 0)


def test_legitimate_benchmark_files_decode():
    """A SIREN 256x3 sinr file at overcomplete 8 (the sparsest setting searched) decodes, as an image too."""
    model = siren(2, 3, [256] * 3, generator=torch.Generator().manual_seed(0))
    # the sparsest setting searched makes the smallest file, which asks for the most work per byte
    data = compress_model(model, "sinr", sparsity=0.02, bits=6, overcomplete=8.0, signal=image_meta(128, 192, 3))
    for kind in ("model", "image"):
        outcome, message, cpu, _ = worker(kind).run(data)
        assert outcome == "decoded", message
    limits.check_inrz_image(len(data), 512 * 768, model.num_params())  # a full Kodak image is allowed too


def test_zz_summary():
    """The headline numbers: inputs fuzzed, outcome classes, zero unclean; crafted files' CPU and memory."""
    lines = [f"inrz fuzz: {STATS['inputs']} inputs ({EXAMPLES} examples per test); outcome classes:"]
    lines += [f"  {k}: {v}" for k, v in sorted(STATS.items()) if k != "inputs"]
    lines.append(f"  unclean: {STATS['unclean']}")
    for name, (outcome, cpu, peak) in CRAFTED.items():
        lines.append(f"crafted {name}: {outcome}, {cpu:.3f} s CPU, peak +{peak / 2**20:.1f} MiB")
    if CRAFTED:
        worst = max(CRAFTED.items(), key=lambda kv: kv[1][1])
        lines.append(f"worst crafted file: {worst[0]} {worst[1][1]:.3f} s CPU; "
                     f"largest peak {max(v[2] for v in CRAFTED.values()) / 2**20:.1f} MiB")
    print("\n" + "\n".join(lines))
    assert STATS["unclean"] == 0
    for w in _WORKER.values():
        w.close()
    _WORKER.clear()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider",
                          "-W", "ignore::pytest.PytestAssertRewriteWarning"]))
