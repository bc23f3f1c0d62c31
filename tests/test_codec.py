"""SINR / quant / coin codecs, the codec registry, the standalone decoder, the .inrz container,
target search, fine-tuning and the CLI."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inrkit.compress import (
    CompressConfig,
    SinrOptions,
    SparseLayer,
    SparseModel,
    coding,
    compress_file,
    compress_model,
    compress_to_target,
    decode_model,
    decompress_file,
    encode_sinr,
    finetune_codes,
    pack,
    sensing_matrix,
    sparse_code,
    unpack,
)
from inrkit.compress.decode.layout import Sections, architecture, as_array, reconstruct
from inrkit.compress.decode.network import DecodedLayer
from inrkit.compress.encode.network import NetworkCodec, register_network_codec, unregister_network_codec
from inrkit.errors import InvalidFileError
from inrkit.models import MLP, siren
from inrkit.signals import ImageSignal


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is much faster than several on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_model(hidden=(24, 64, 64), seed=0) -> MLP:
    return siren(2, 3, list(hidden), generator=torch.Generator().manual_seed(seed))


def image_signal(size=16) -> ImageSignal:
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(6 * x) * 100 + 128, np.cos(5 * y) * 100 + 128, (x + y) * 120], -1)
    return ImageSignal(img.astype(np.float32))


# ---------------------------------------------------------------- coding
def test_quantize_error_is_half_a_step():
    x = np.random.default_rng(0).standard_normal(1000)
    for bits in (3, 8, 12):
        codes, lo, step = coding.quantize(x, bits)
        assert codes.max() <= 2**bits - 1
        assert np.abs(coding.dequantize(codes, lo, step) - x).max() <= step / 2 + 1e-12
    codes, lo, step = coding.quantize(np.full(5, 0.3), 8)
    assert step == 0 and np.all(coding.dequantize(codes, lo, step) == 0.3)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(16, 400), st.integers(0, 2**32 - 1))
def test_support_codes_round_trip(n, s, k2, seed):
    rng = np.random.default_rng(seed)
    idx = np.stack([np.sort(rng.choice(k2, s, replace=False)) for _ in range(n)])
    gaps = coding.encode_gaps(idx)
    assert n * s <= len(gaps) <= 2 * n * s
    assert np.array_equal(coding.decode_gaps(gaps, n, s, k2), idx)
    assert np.array_equal(coding.decode_bitmask(coding.encode_bitmask(idx, k2), n, s, k2), idx)


def test_brotli_decompress_is_bounded():
    import brotli

    bomb = brotli.compress(bytes(50_000_000), quality=5)
    assert len(bomb) < 100
    with pytest.raises(InvalidFileError):
        coding.brotli_decompress(bomb, 1000)
    assert coding.brotli_decompress(coding.brotli_compress(b"abc"), 3) == b"abc"
    with pytest.raises(InvalidFileError):
        coding.brotli_decompress(b"\xff\x00garbage", 10)


def test_container_round_trip_and_rejections():
    data = pack({"format": "x", "a": [1, 2.5]}, [b"abc", b"", b"defg"])
    header, sections = unpack(data)
    assert header["a"] == [1, 2.5] and sections == [b"abc", b"", b"defg"]
    assert data[:4] == b"INRZ"
    for bad in (data[:-1], data[:10], b"NOPE" + data[4:], data[:4] + b"\x09" + data[5:]):
        with pytest.raises(InvalidFileError):
            unpack(bad)


# ---------------------------------------------------------------- codecs
def test_coin_and_quant_round_trip():
    model = small_model()
    coin = compress_model(model, "coin")
    assert len(coin) > 2 * model.num_params()  # 16 bits per parameter, no entropy coding
    dec, header = decode_model(coin)
    assert header["codec"] == "coin" and dec.widths == model.widths
    for a, b in zip(model.weights, dec.weights):
        assert torch.equal(a.detach().half().float(), b)
    quant = compress_model(model, "quant", bits=6)
    dec, _ = decode_model(quant)
    assert len(quant) < len(coin)
    for a, b in zip(model.weights, dec.weights):
        step = (a.max() - a.min()).item() / 63
        assert (a - b).abs().max().item() <= step / 2 + 1e-6


def test_sinr_round_trip_matches_sparse_code():
    model = small_model()
    code = sparse_code(model, SinrOptions(sparsity=0.3, bits=16, overcomplete=4))
    assert code.layers[0] is None  # first layer kept as quantised values by default
    assert code.layers[1].mode == "blocks" and code.layers[2].mode == "rows"  # 24 < 50 inputs, 64 >= 50
    data = encode_sinr(code)
    dec, header = decode_model(data)
    assert header["codec"] == "sinr" and header["params"]["generator"] == "pcg64-boxmuller-v1"
    for i in (1, 2):
        layer = code.layers[i]
        assert 2 * layer.idx.shape[1] < layer.k1 and layer.k2 == 4 * layer.k1
        exact = reconstruct(layer, layer.coef, 0, tuple(model.weights[i].shape))
        assert np.abs(dec.weights[i].detach().numpy() - exact).max() < 1e-4  # 16-bit coefficients
    # the paper's mode: code the first layer too (as flattened blocks)
    first = sparse_code(model, SinrOptions(sparsity=0.3, code_first=True)).layers[0]
    assert first is not None and first.mode == "blocks"


def test_sinr_is_smaller_with_fewer_atoms_or_bits():
    model = small_model()
    sizes = [len(compress_model(model, "sinr", sparsity=sp, bits=b)) for sp, b in [(0.4, 8), (0.2, 8), (0.2, 5)]]
    assert sizes[0] > sizes[1] > sizes[2]


def test_decoding_is_deterministic_and_bit_exact():
    """A hand-made sparse code decodes to the same bits everywhere (golden digest)."""
    model = MLP([2, 64, 64, 3], ["sine", "sine", "identity"], [30.0, 30.0, 1.0])
    rng = np.random.default_rng(2024)
    with torch.no_grad():
        for w in model.weights:
            w.copy_(torch.from_numpy(rng.uniform(-0.1, 0.1, tuple(w.shape)).astype(np.float32)))
    idx = np.sort(np.stack([rng.choice(256, 10, replace=False) for _ in range(64)]), axis=1)
    coef = rng.standard_normal((64, 10)) * 0.1
    code = SparseModel(model, [None, SparseLayer("rows", 64, 256, idx, coef)], SinrOptions(bits=12, overcomplete=4))
    data = encode_sinr(code)
    w1 = decode_model(data)[0].weights[1].detach().numpy()
    assert np.array_equal(w1, decode_model(data)[0].weights[1].detach().numpy())
    # independent computation: dequantised coefficients times dictionary columns (BLAS order may differ)
    q, lo, step = coding.quantize(coef, 12)
    ref = np.einsum("ns,nsk->nk", coding.dequantize(q, lo, step).reshape(64, 10), sensing_matrix(64, 256, 0).T[idx])
    assert np.abs(w1 - ref).max() < 1e-6
    assert hashlib.sha256(w1.tobytes()).hexdigest() == GOLDEN_DECODE, hashlib.sha256(w1.tobytes()).hexdigest()
    if torch.cuda.is_available():  # decoding never touches the device; moving it is exact
        assert np.array_equal(decode_model(data)[0].cuda().weights[1].cpu().detach().numpy(), w1)


# the encoder's quantiser changed with .inrz v2 (12-bit steps, origin on a step/16 grid: docs/compress.md)
GOLDEN_DECODE = "512a355f49070740e04a5fb11489aad44a5fee5d336f49be5c09bdaf2f5ff112"


def test_fourier_model_round_trip():
    from inrkit.models import ffn

    model = ffn(2, 1, [32, 32], num_frequencies=8, generator=torch.Generator().manual_seed(1))
    dec, _ = decode_model(compress_model(model, "sinr"))
    assert torch.equal(dec.fourier, model.fourier)
    x = torch.rand(20, 2)
    assert dec(x).shape == (20, 1)


# ---------------------------------------------------------------- search and fine-tuning
@pytest.fixture(scope="module")
def fitted():
    from inrkit.train import FitConfig, fit

    signal = image_signal()
    model = siren(2, 3, [32, 64], generator=torch.Generator().manual_seed(0))
    return fit(model, signal, FitConfig(steps=150, lr=1e-3, progress=False, precision="fp32")).model.cpu(), signal


def test_compress_default_rate_rule(tmp_path: Path, fitted):
    """Without a target: with the signal, the smallest file within 1 dB of the model's PSNR (or, when no setting
    gets there, the best one, reported and warned about); without the signal, the codec's conservative setting."""
    from PIL import Image

    from inrkit.compress.encode.api import DEFAULT_MAX_LOSS_DB
    from inrkit.compress.encode.network import NETWORK_CODECS
    from inrkit.errors import InrkitWarning
    from inrkit.models import save_model

    model, signal = fitted
    save_model(model, tmp_path / "m.safetensors", signal=signal.metadata())
    y, x = np.mgrid[0:16, 0:16] / 16  # image_signal() as an 8-bit PNG, with noise: the model is at about 30 dB
    img = np.stack([np.sin(6 * x) * 100 + 128, np.cos(5 * y) * 100 + 128, (x + y) * 120], -1)
    img += np.random.default_rng(0).normal(0, 8, img.shape)
    Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)).save(tmp_path / "s.png")
    m, s = tmp_path / "m.safetensors", tmp_path / "s.png"
    rep = compress_file(m, tmp_path / "q.inrz", CompressConfig("quant", progress=False), signal_path=s)
    assert rep["rate_rule"].startswith("within 1 dB") and rep["target_met"]
    assert rep["psnr"] >= rep["model_psnr"] - DEFAULT_MAX_LOSS_DB
    fewer = compress_file(m, tmp_path / "f.inrz", CompressConfig("quant", bits=rep["bits"] - 1, progress=False),
                          signal_path=s)
    assert fewer["psnr"] < rep["model_psnr"] - DEFAULT_MAX_LOSS_DB  # the smallest such file
    clean = np.stack([np.sin(6 * x) * 100 + 128, np.cos(5 * y) * 100 + 128, (x + y) * 120], -1)
    Image.fromarray(np.clip(np.rint(clean), 0, 255).astype(np.uint8)).save(tmp_path / "c.png")
    with pytest.warns(InrkitWarning, match="within 1 dB"):  # a 58 dB model: 12-bit weights lose more than 1 dB
        best = compress_file(m, tmp_path / "c.inrz", CompressConfig("quant", progress=False),
                             signal_path=tmp_path / "c.png")
    assert not best["target_met"] and best["bits"] == 12 and best["psnr"] < best["model_psnr"] - DEFAULT_MAX_LOSS_DB
    bare = compress_file(m, tmp_path / "b.inrz", CompressConfig("quant", progress=False))
    safe = NETWORK_CODECS.get("quant").safe_options
    assert bare["rate_rule"].startswith("conservative") and bare["bits"] == safe["bits"]
    given = compress_file(m, tmp_path / "g.inrz", CompressConfig("quant", bits=6, progress=False))
    assert given["rate_rule"] == "as given" and given["bits"] == 6 and given["bytes"] < bare["bytes"]


def test_target_psnr_and_size_search(fitted):
    model, signal = fitted
    grid = dict(bits_grid=(6, 8), sparsity_grid=(0.1, 0.2, 0.3, 0.4))
    ref = compress_to_target(model, signal, CompressConfig("sinr", sparsity=0.3, bits=8))
    target = ref.psnr - 0.01
    res = compress_to_target(model, signal, CompressConfig("sinr", target_psnr=target, **grid))
    assert res.target_met and res.psnr >= target and len(res.data) <= len(ref.data)
    assert res.psnr == pytest.approx(signal.evaluate(decode_model(res.data)[0])["psnr"])
    budget = len(ref.data) - 1
    small = compress_to_target(model, signal, CompressConfig("sinr", target_bytes=budget, **grid))
    assert len(small.data) <= budget and small.target_met
    q = compress_to_target(model, signal, CompressConfig("quant", target_psnr=target - 5))
    assert q.target_met and q.params["bits"] in (6, 7, 8, 10)
    none = compress_to_target(model, signal, CompressConfig("quant", target_psnr=200.0, bits_grid=(4, 6)))
    assert none.target_met is False and none.params["bits"] == 6


def test_finetune_keeps_support_and_improves_psnr(fitted):
    model, signal = fitted
    code = sparse_code(model, SinrOptions(sparsity=0.2, bits=16))
    before = signal.evaluate(decode_model(encode_sinr(code))[0])["psnr"]
    tuned = finetune_codes(code, signal, steps=40, lr=1e-3)
    after = signal.evaluate(decode_model(encode_sinr(tuned))[0])["psnr"]
    assert after > before
    for a, b in zip(code.layers, tuned.layers):
        if a is not None:
            assert np.array_equal(a.idx, b.idx) and not np.array_equal(a.coef, b.coef)


# ---------------------------------------------------------------- CLI
class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.returncode, self.stdout, self.stderr = code, out, err


@pytest.fixture
def run_cli(capsys):
    from inrkit.cli import main

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def test_cli_round_trip(tmp_path: Path, fitted, run_cli):
    from PIL import Image

    from inrkit.models import save_model

    model, signal = fitted
    img = np.clip(np.rint(signal.denormalize(signal.values).reshape(16, 16, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "img.png")
    save_model(model, tmp_path / "m.safetensors", signal=signal.metadata())
    r = run_cli("compress", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "m.inrz"), "--codec", "sinr",
                "--signal", str(tmp_path / "img.png"), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["bytes"] == (tmp_path / "m.inrz").stat().st_size and "psnr" in rep and "bpp" in rep
    r = run_cli("decompress", str(tmp_path / "m.inrz"), "-o", str(tmp_path / "d.safetensors"), "--json")
    assert r.returncode == 0, r.stderr
    from inrkit.models import load_model

    dec, header = load_model(tmp_path / "d.safetensors")
    assert header["signal"]["kind"] == "image"
    from inrkit.signals import load_signal

    assert load_signal(tmp_path / "img.png").evaluate(dec)["psnr"] == pytest.approx(rep["psnr"], abs=1e-6)
    r = run_cli("encode", str(tmp_path / "img.png"), "-o", str(tmp_path / "e.inrz"), "--bpp", "40",
                "--codec", "sinr", "--hidden", "16x2", "--steps", "30", "--json")
    assert r.returncode == 0, r.stderr
    enc = json.loads(r.stdout)
    assert enc["bytes"] == (tmp_path / "e.inrz").stat().st_size and enc["bpp"] <= 40.0 + 1e-9
    r = run_cli("decode", str(tmp_path / "e.inrz"), "-o", str(tmp_path / "out.png"),
                "--reference", str(tmp_path / "img.png"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["psnr"] == pytest.approx(enc["psnr"], abs=1e-4)
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (16, 16, 3)
    # a damaged file: one line on stderr, exit code 2
    data = bytearray((tmp_path / "m.inrz").read_bytes())
    data[20] ^= 0xFF
    (tmp_path / "bad.inrz").write_bytes(bytes(data))
    r = run_cli("decompress", str(tmp_path / "bad.inrz"), "-o", str(tmp_path / "x.safetensors"))
    assert r.returncode == 2 and "checksum" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- the standalone decoder
DECODE_WITHOUT_TORCH = """
import hashlib, json, sys
sys.modules["torch"] = None  # any import of torch now fails
from inrkit.compress.decode.decoder import decode_file
net = decode_file(sys.argv[1])
digest = hashlib.sha256(b"".join(a.tobytes() for a in net.weights + net.biases)).hexdigest()
heavy = sorted(m for m in sys.modules if m.startswith("inrkit") and m.split(".")[-1] in
               ("api", "encoder", "finetune", "model", "models", "omp", "sparse", "train", "signals"))
print(json.dumps({"codec": net.codec, "widths": net.widths, "digest": digest, "heavy": heavy,
                  "fourier": None if net.fourier is None else list(net.fourier.shape)}))
"""


@pytest.mark.parametrize("codec", ["sinr", "quant", "coin"])
def test_decoder_runs_without_torch(tmp_path: Path, codec: str):
    """The decoder module imports NumPy, the standard library and Brotli only, and gives decode_model's bits."""
    from inrkit.models import ffn

    model = ffn(2, 3, [24, 64], num_frequencies=8, generator=torch.Generator().manual_seed(3))
    data = compress_model(model, codec, bits=7)
    (tmp_path / "m.inrz").write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", DECODE_WITHOUT_TORCH, str(tmp_path / "m.inrz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    dec, _ = decode_model(data)
    params = [p.detach().numpy() for p in list(dec.weights) + list(dec.biases)]
    assert got["heavy"] == [] and got["codec"] == codec and got["widths"] == dec.widths
    assert got["fourier"] == [8, 2]
    assert got["digest"] == hashlib.sha256(b"".join(a.tobytes() for a in params)).hexdigest()


# ---------------------------------------------------------------- the codec registry
@dataclass
class Raw32Options:
    """A trivial codec with no parameters."""


class Raw32Codec(NetworkCodec):
    """Every tensor as raw float32: the smallest possible codec, registered from a test."""

    name = "raw32"
    options_type = Raw32Options

    def encode_prepared(self, prepared, options, signal=None, extra=None) -> bytes:
        sections = [as_array(t).astype("<f4").tobytes() for w, b in zip(prepared.weights, prepared.biases)
                    for t in (w, b)]
        return self.pack(prepared, {}, [{} for _ in prepared.weights], sections, signal, extra)

    def decode(self, sections: Sections, params, records, widths) -> list[DecodedLayer]:
        shapes = [(widths[i + 1], widths[i]) for i in range(len(records))]
        return [(sections.raw(s, "<f4").astype(np.float64), sections.raw(s[:1], "<f4").astype(np.float64))
                for s in shapes]


@pytest.fixture
def raw32():
    """Register the trivial codec for one test (the only place a new codec touches)."""
    register_network_codec(Raw32Codec())
    yield
    unregister_network_codec(Raw32Codec.name)


def test_registered_codec_round_trips_everywhere(tmp_path: Path, fitted, raw32, run_cli):
    model, signal = fitted
    data = compress_model(model, "raw32", signal=signal.metadata())
    dec, header = decode_model(data)
    assert header["codec"] == "raw32" and architecture(dec) == architecture(model)
    for a, b in zip(list(model.parameters()), list(dec.parameters())):
        assert torch.equal(a, b)  # float32 in, float32 out
    best = compress_to_target(model, signal, CompressConfig("raw32", target_psnr=0.0), meta=signal.metadata())
    assert best.target_met and best.data == data and best.psnr == pytest.approx(signal.evaluate(model)["psnr"])
    from inrkit.models import load_model, save_model

    save_model(model, tmp_path / "m.safetensors", signal=signal.metadata())
    rep = compress_file(tmp_path / "m.safetensors", tmp_path / "m.inrz", CompressConfig("raw32"))
    assert rep["codec"] == "raw32" and rep["bytes"] == (tmp_path / "m.inrz").stat().st_size
    assert decompress_file(tmp_path / "m.inrz", tmp_path / "d.safetensors")["codec"] == "raw32"
    assert torch.equal(load_model(tmp_path / "d.safetensors")[0].weights[1], model.weights[1])
    r = run_cli("compress", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "c.inrz"), "--codec", "raw32",
                "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["codec"] == "raw32" and (tmp_path / "c.inrz").read_bytes() == data
    r = run_cli("decompress", str(tmp_path / "c.inrz"), "-o", str(tmp_path / "e.safetensors"), "--json")
    assert r.returncode == 0, r.stderr
    assert torch.equal(load_model(tmp_path / "e.safetensors")[0].biases[0], model.biases[0])


def test_decode_image_needs_an_image_file(tmp_path: Path):
    from inrkit.compress import decode_image

    (tmp_path / "m.inrz").write_bytes(compress_model(small_model(), "coin"))  # no signal metadata
    with pytest.raises(InvalidFileError, match="image"):
        decode_image(tmp_path / "m.inrz", tmp_path / "out.png")


def test_unregistered_codec_is_refused(tmp_path: Path, fitted, run_cli):
    model, _ = fitted
    from inrkit.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="unknown codec"):
        compress_model(model, "raw32")
    with pytest.raises(InvalidInputError, match="unknown codec option"):
        compress_model(model, "quant", sparsty=0.3)
    header, sections = unpack(compress_model(model, "coin"))
    with pytest.raises(InvalidFileError, match="unknown codec"):
        decode_model(pack(dict(header, codec="raw32"), sections))
