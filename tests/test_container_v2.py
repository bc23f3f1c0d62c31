"""The ``.inrz`` v2 container (binary header) and its entropy coding (range coding with constriction)."""
from __future__ import annotations

import base64
import hashlib
import math
import struct

import numpy as np
import pytest
import torch

from inrkit.compress import compress_model, decode_model, entropy
from inrkit.compress.decode.container import MAX_NODES, dump_value, load_value, pack, unpack, writing_version
from inrkit.compress.decode.decoder import decode
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models import siren

META = {"kind": "image", "shape": [64, 64], "channels": 3, "domain": [[-1.0, 1.0], [-1.0, 1.0]],
        "value_offset": [127.5] * 3, "value_scale": [127.5] * 3}
CASES = [("quant", {"bits": 6}), ("quant", {"bits": 12}), ("coin", {}), ("sinr", {"sparsity": 0.3, "bits": 6}),
         ("sinr", {"sparsity": 0.45, "overcomplete": 1.2, "bits": 8})]


def model() -> torch.nn.Module:
    """A SIREN whose weights are Laplace-distributed, as trained weights are (the init is uniform)."""
    m = siren(2, 3, [24, 56, 24], generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for w in m.weights:
            w.copy_(torch.from_numpy(rng.laplace(0, 0.05, tuple(w.shape)).astype(np.float32)))
    return m


def arrays(net) -> list[np.ndarray]:
    return net.weights + net.biases


def digest(net) -> str:
    return hashlib.sha256(b"".join(a.tobytes() for a in arrays(net))).hexdigest()


def header_bytes(data: bytes) -> int:
    return len(data) - sum(len(s) for s in unpack(data)[1])


@pytest.mark.parametrize("codec,opts", CASES)
def test_v2_equals_v1_weights_and_is_smaller(codec, opts):
    m = model()
    with writing_version(1):
        v1 = compress_model(m, codec, signal=META, **opts)
    v2 = compress_model(m, codec, signal=META, **opts)
    assert v1[4] == 1 and v2[4] == 2
    a, b = decode(v1), decode(v2)
    assert all(np.array_equal(x, y) for x, y in zip(arrays(a), arrays(b)))  # bit-exact, same quantiser
    assert b.header["signal"] == META and b.header["model"] == a.header["model"]
    assert len(v2) < len(v1) and header_bytes(v2) < header_bytes(v1) - 80
    assert decode_model(v2)[0].widths == m.widths


def test_v2_header_is_a_few_tens_of_bytes():
    m = siren(2, 3, [32, 32], generator=torch.Generator().manual_seed(0))
    data = compress_model(m, "coin")  # no per-tensor quantisers: the structure alone
    assert header_bytes(data) <= 64, header_bytes(data)
    data = compress_model(m, "quant", bits=8, signal=META)  # + 6 quantisers + the image's metadata
    assert header_bytes(data) <= 140, header_bytes(data)


def test_v1_file_keeps_decoding():
    """A v1 file (JSON header, Brotli sections) written by the v1 writer, pinned with its decoded weights."""
    data = base64.b64decode(V1_FILE)
    assert data[4] == 1
    net = decode(data)
    assert net.widths == [2, 4, 3] and digest(net) == V1_DIGEST
    with writing_version(1):  # the v1 writer still writes the same bytes
        assert compress_model(siren(2, 3, [4], generator=torch.Generator().manual_seed(0)), "quant", bits=5) == data


def test_decoding_is_deterministic_and_pinned():
    """Encoder output and decoded weights are pinned: the entropy models and the range coder are exact."""
    m = model()
    data = compress_model(m, "quant", bits=7, signal=META)
    assert {entropy.section_method(s) for s in unpack(data)[1]} & {"laplace", "gauss"}
    assert hashlib.sha256(data).hexdigest() == ENCODED_DIGEST, hashlib.sha256(data).hexdigest()
    assert digest(decode(data)) == DECODED_DIGEST, digest(decode(data))
    tables = b"".join(entropy.model_weights(method, entropy.param_for(x), m2, 300).tobytes()
                      for method in (entropy.LAPLACE, entropy.GAUSS) for x in (0.9, 1e-3, 1e-9) for m2 in (0, 301))
    assert hashlib.sha256(tables).hexdigest() == TABLES_DIGEST, hashlib.sha256(tables).hexdigest()


@pytest.mark.parametrize("bits", [1, 3, 6, 8, 11, 16])
def test_entropy_codes_round_trip(bits):
    rng = np.random.default_rng(bits)
    for codes in (rng.integers(0, 1 << bits, 500), np.clip(np.rint(rng.laplace((1 << bits) / 3, 2, 700)), 0,
                                                             (1 << bits) - 1), np.zeros(40, int), np.zeros(0, int)):
        codes = codes.astype(np.int64)
        section = entropy.encode_codes(codes, bits)
        assert np.array_equal(entropy.decode_codes(section, codes.size, bits), codes)
        assert len(section) <= 1 + (codes.size * bits + 7) // 8  # never worse than bit packing
    peaked = np.clip(np.rint(rng.laplace(200, 3, 5000)), 0, 255).astype(np.int64)
    section = entropy.encode_codes(peaked, 8)
    assert section[0] in (entropy.LAPLACE, entropy.GAUSS)
    entropy_bits = -(np.bincount(peaked) / peaked.size)[peaked].__array__()
    ideal = -np.log2(np.bincount(peaked)[peaked] / peaked.size).sum() / 8
    assert len(section) < 1.05 * ideal + 16 and entropy_bits.size  # close to the empirical entropy


def test_entropy_decoder_refuses_garbage_cleanly():
    for section in (b"", b"\x09abc", b"\x03\x00", b"\x03\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80",
                    b"\x02\x01", b"\x01garbage", bytes([entropy.LAPLACE, 5, 0, 0]) + b"\xff" * 3):
        with pytest.raises(InvalidFileError):
            entropy.decode_codes(section, 1000, 8)
    with pytest.raises(InvalidFileError):
        entropy.decode_bytes(b"\x00ab", 3)


def test_header_values_round_trip_and_refusals():
    values = [None, True, False, 0, 63, 64, -1, 2**62, -(2**63), 0.5, -0.0, 1 / 3, 1e-300, 65504.0, "", "sine",
              "kodim01.png", "é", [], {}, [1.0, 1.0, 1.0], [[-1.0, 1.0]] * 2, [0.25, 0.001], {"a": [1, {"b": None}]},
              list(range(100)), {f"k{i}": i for i in range(40)}]
    for v in values:
        got = load_value(dump_value(v))
        assert got == v and struct.pack("<d", 0.0) and type(got) is type(v)
        if isinstance(v, float):
            assert math.copysign(1, got) == math.copysign(1, v)
    for bad in (math.nan, math.inf, 2**64, {1: 2}, object()):
        with pytest.raises(InvalidInputError):
            dump_value(bad)
    for raw in (b"", b"\x0c", b"\x05\x00\x00\xc0\x7f", b"\x07\x05ab", b"\x07\x02\xff\xfe", b"\x11\x41\x41",
                b"\x12\x80\x41\x80\x42", b"\x0a\x01\x41", b"\x20\x41", b"\x0a" + entropy.write_varint(MAX_NODES) +
                b"\x0a" + entropy.write_varint(MAX_NODES) + b"\x41", b"\x21" * 70 + b"\x41", b"\x0b\x00\x00\x00"):
        with pytest.raises(InvalidFileError):
            load_value(raw)


def test_container_v2_round_trip_and_rejections():
    header = {"format": "x", "a": [1, 2.5]}
    for sections in ([b"abc", b"", b"defg"], [], [b""], [b"xyz"]):
        data = pack(header, sections, version=2)
        got, secs = unpack(data)
        assert got["a"] == [1, 2.5] and secs == sections and got["sizes"] == [len(s) for s in sections]
    data = pack(header, [b"abc", b"defg"], version=2)
    for bad in (data[:-1], data[:8], b"NOPE" + data[4:], data[:4] + b"\x03" + data[5:]):
        with pytest.raises(InvalidFileError):
            unpack(bad)


V1_FILE = (
    "SU5SWgHxAAAAG4kBIJwHtvOo7Q9pkSTxzFqL7G3VdOpQmmYB+qgTg3AbpX59QY3pYcjADw2CYrPodPW13D1mGIB23wIpaYuCIGqLSingIPjmgWTn0p"
    "qtRz9NKO4txFYg1teVVieoSyad1s1k1+TjncdN91GRn3bjXD0oNLZ1xX1mZoymJeqHgIfgw0Y6qukiuKUPZBADJY+0wbmCaXwc4ZPgFROLWS9xuR1"
    "40FCJGm9/0l0lwezxwXMsDD9R127NkClT/c+7jDwkwK5x3xZ5gLKnddLKea50lDsMK31OdunmaLcqVXIKs9IAfUd98GBPDG1q7hQOkxz7D4sDgBAa"
    "AAIIFQ8fA4sBgAwfAAYDiwWAAAUJERcbBQkXHw0eAwsBgAAIHwNW1E+r"
)
V1_DIGEST = "943e128e32bed65f6eb16003839b3154a57d58611f2fae28f3543486141426a0"
ENCODED_DIGEST = "e8574805890a9a782ac07803621a6c8d95f5b82b826f82a2be998cbb5fe83dac"
DECODED_DIGEST = "d051905358c06975346e03e6fd91b8fc9925216a1a46f254f5b60ebbaf8ee86e"
TABLES_DIGEST = "527725555d950e28440ac3356b178fd3edc2247026d26d372078e1761d0be00c"
