"""Fuzzing the .inrz decoder: anything malformed raises InvalidFileError, nothing else, no huge allocation.

About 4,200 generated cases (most decode two or three inputs): random bytes, truncations, bit flips (with and without a
repaired checksum), mutated header fields, mutated payload sections and absurd sizes.
"""
from __future__ import annotations

import json
import resource
import struct
import tracemalloc
import zlib

import brotli
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inrkit.compress import compress_model, decode_model
from inrkit.errors import InvalidFileError
from inrkit.models import siren

FUZZ = settings(max_examples=700, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
META = {"kind": "image", "shape": [8, 8], "channels": 3, "domain": [[-1, 1], [-1, 1]],
        "value_offset": [127.5] * 3, "value_scale": [127.5] * 3}


def _samples() -> dict[str, bytes]:
    model = siren(2, 3, [12, 56, 8], generator=torch.Generator().manual_seed(0))  # blocks and rows layers
    return {
        "sinr": compress_model(model, "sinr", sparsity=0.3, bits=6, code_first=True, signal=META),
        "sinr-bitmask": compress_model(model, "sinr", sparsity=0.45, overcomplete=1.2, signal=META),
        "quant": compress_model(model, "quant", bits=5, signal=META),
        "coin": compress_model(model, "coin", signal=META),
    }


SAMPLES = _samples()
NAMES = sorted(SAMPLES)


def check(data: bytes) -> None:
    """The decoder may succeed or raise InvalidFileError; anything else fails the test."""
    try:
        decode_model(data)
    except InvalidFileError as exc:
        assert str(exc) and "\n" not in str(exc)


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
    for name in NAMES:
        model, header = decode_model(SAMPLES[name])
        assert header["signal"] == META and model.widths == [2, 12, 56, 8, 3]


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(data, magic):
    check((b"INRZ\x01" + data) if magic else data)
    check(with_crc(b"INRZ\x01" + data))


@FUZZ
@given(st.sampled_from(NAMES), st.integers(0, 10**6), st.booleans())
def test_truncations(name, cut, fix_crc):
    data = SAMPLES[name]
    cut %= len(data)
    check(data[:cut])
    if fix_crc and cut > 4:
        check(with_crc(data[: cut - 4]))


@FUZZ
@given(st.sampled_from(NAMES), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1, max_size=4),
       st.booleans())
def test_bit_flips(name, flips, fix_crc):
    data = bytearray(SAMPLES[name])
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


@pytest.mark.parametrize("widths", [[2, 65536, 65536, 3], [2, 4096, 4096, 4096, 3], [2] + [5000] * 5 + [3]])
def test_absurd_architecture_allocates_nothing(widths):
    header, payload = split(SAMPLES["sinr"])
    header["model"]["widths"] = widths
    header["model"]["activations"] = ["sine"] * (len(widths) - 2) + ["identity"]
    header["model"]["omegas"] = [30.0] * (len(widths) - 1)
    header["layers"] = [header["layers"][0]] * (len(widths) - 1)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidFileError):
            decode_model(build(json.dumps(header).encode(), payload))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20


def test_fuzzing_kept_memory_small():
    """Peak resident memory of this process stays far below gigabytes after all the inputs above."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert peak_kib < 3 * 2**20  # < 3 GiB (the interpreter with torch uses a few hundred MiB)
