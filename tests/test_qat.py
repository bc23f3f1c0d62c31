"""Quantisation-aware fine-tuning (QAT, :mod:`inrkit.compress.encode.qat`) and the per-row ``quant`` files it writes."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from inrkit.compress import CompressConfig, compress_model, compress_to_target, decode_model
from inrkit.compress.decode.container import dump_value, load_value, pack, unpack, writing_version
from inrkit.compress.decode.decoder import decode
from inrkit.compress.encode.network import NETWORK_CODECS
from inrkit.compress.encode.qat import quantisation_aware
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models import siren
from inrkit.signals import ImageSignal
from inrkit.train import FitConfig, fit

META = {"kind": "image", "shape": [16, 16], "channels": 3, "domain": [[-1.0, 1.0], [-1.0, 1.0]],
        "value_offset": [127.5] * 3, "value_scale": [127.5] * 3}


def image_signal(size: int = 16) -> ImageSignal:
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(6 * x) * 100 + 128, np.cos(5 * y) * 100 + 128, (x + y) * 120], -1)
    return ImageSignal(img.astype(np.float32))


@pytest.fixture(scope="module")
def fitted():
    signal = image_signal()
    model = siren(2, 3, [24, 24], generator=torch.Generator().manual_seed(0))
    return fit(model, signal, FitConfig(steps=300, lr=1e-3, progress=False, precision="fp32")).model.cpu(), signal


def weights(net) -> list[np.ndarray]:
    return [np.asarray(a) for a in net.weights + net.biases]


def psnr(data: bytes, signal: ImageSignal) -> float:
    return float(signal.evaluate(decode_model(data)[0])["psnr"])


# ---------------------------------------------------------------- QAT
def test_qat_beats_plain_quantisation_at_the_same_bits(fitted):
    model, signal = fitted
    quant = NETWORK_CODECS.get("quant")
    plain = psnr(compress_model(model, "quant", bits=4, signal=META), signal)
    rows = psnr(compress_model(model, "quant", bits=4, per_row=True, signal=META), signal)
    opts = quant.make_options(bits=4, per_row=True)
    tuned = quantisation_aware(model, signal, 4, 150)
    qat = psnr(quant.encode_prepared(quant.prepare(tuned, opts), opts, META), signal)
    assert qat > max(plain, rows) + 3.0, (plain, rows, qat)


def test_qat_model_is_what_the_file_decodes_to(fitted):
    """The exported QAT model holds the quantised weights; the per-row file decodes to them bit for bit."""
    model, signal = fitted
    tuned = quantisation_aware(model, signal, 5, 20)
    quant = NETWORK_CODECS.get("quant")
    opts = quant.make_options(bits=5, per_row=True)
    for version in (1, 2):
        with writing_version(version):
            data = quant.encode_prepared(quant.prepare(tuned, opts), opts, META)
        assert data[4] == version
        net = decode(data)
        ref = [t.detach().numpy() for t in (*tuned.model.weights, *tuned.model.biases)]
        assert all(np.array_equal(a, b) for a, b in zip(weights(net), ref))
        assert "row_bits" in net.header["params"] and all("wr" in r for r in net.header["layers"])


def test_compress_to_target_with_qat(fitted):
    model, signal = fitted
    res = compress_to_target(model, signal, CompressConfig("quant", bits=5, qat_steps=20), meta=META)
    assert res.params["per_row"] and res.params["qat_steps"] == 20
    assert res.psnr == pytest.approx(psnr(res.data, signal))
    sinr = compress_to_target(model, signal, CompressConfig("sinr", bits=6, sparsity=0.3, qat_steps=10), meta=META)
    coin = compress_to_target(model, signal, CompressConfig("coin", qat_steps=10), meta=META)
    assert sinr.psnr and coin.psnr and coin.psnr > 30
    with pytest.raises(InvalidInputError):
        compress_to_target(model, None, CompressConfig("quant", qat_steps=5))
    with pytest.raises(InvalidInputError):
        compress_to_target(model, signal, CompressConfig("quant", bits=1, qat_steps=5))


def test_quantisation_aware_coefficient_finetuning(fitted):
    from inrkit.compress import SinrOptions, finetune_codes, sparse_code

    model, signal = fitted
    sinr = NETWORK_CODECS.get("sinr")
    code = sparse_code(model, SinrOptions(sparsity=0.3, bits=5))
    tuned = finetune_codes(code, signal, 40, 3e-4, aware=True)
    before, after = (psnr(sinr.encode_prepared(c, c.options, META), signal) for c in (code, tuned))
    assert after > before + 1.0, (before, after)


# ---------------------------------------------------------------- per-row files
@pytest.mark.parametrize("bits,row_bits", [(2, 1), (5, 8), (8, 4), (12, 16), (16, 8)])
def test_per_row_round_trip_is_exact(bits, row_bits):
    from inrkit.compress.decode import coding

    m = siren(2, 3, [16, 40], generator=torch.Generator().manual_seed(bits))
    with torch.no_grad():
        m.weights[1][3].zero_()  # a zero row: step 0 on the grid, decodes to zeros
    data = compress_model(m, "quant", bits=bits, per_row=True, row_bits=row_bits, signal=META)
    net = decode(data)
    for w, got in zip(m.weights, net.weights):
        w64 = w.detach().double().numpy()
        k, base = coding.row_grid(coding.row_steps(w64, bits), row_bits, up=True)
        ref = coding.dequantize_rows(coding.quantize_rows(w64, bits, k, base), bits, k, base).astype(np.float32)
        assert np.array_equal(got, ref)
        assert np.abs(got - w64).max() <= (k * base).max() / 2 + 1e-7  # no row is clipped
    assert not net.weights[1][3].any()


# files written before per-row steps existed (the repository's HEAD when QAT was added): bytes, decoded digest
OLD_FILES = [
    ("v1-quant",
     "SU5SWgEVAQAAGwcCAJwHtvOo7Q9pkSTxzFqLbNnsdbMVy+0HKIotPEQ7p/32X944oU9fHjEopVl0uvoO3lxmBZbrzuPO5X9VE9ow"
     "ziignqemvg6LJJGXe8Ya4mM/ib5An1Xy1TqseG3gnI2OD6UvnNXPj+P4ApFuy/FhEFlYV8YMa3lenfDhccQPSnQ6ldum7Es/GYRc"
     "ogyIaOP46AwRySupBF+f4x4Ox/iG9fCBjeYBU73jkX+KjXaOzFa43ZUOKkRMr1PAhhicjwdQZikYXXtamX4AsgmRyJPyNWl1Y4kN"
     "Q6fb8i2hOY5RhwHRjWmdq8uoALcYWQ5DX7309qZK5rnIhiV0M1Z8tel4bDP6Jw9JFz8pcE3xqDeUJsrb/4sHgAAHFAIhBDc1Kj8g"
     "OQocBCADiwOACz84OisOPwADGz8A+GWAO21CpQDAGUbOCVxcSRgRDEAMM8elR5MynX+SnW8r1aeXjpiQCDQkp754pHBt0qfYEQSO"
     "XqRDAIsDgAYRDycAPyIpA4sLgAYxFgwkLSISJBASETMFLTAGAwYAOz0ZPwMLAYA/AAMD0lVvcg==",
     "ec7d5855d0ba85b322de69dd1f41282d5de5e91aef838bb3bb61cacae0df549b"),
    ("v1-sinr",
     "SU5SWgFtAQAAG98CIBwHdltO6xkjwRRW+BBEsK7Up5+Quh97ANQ5lKaMnF4n1josXX0PbhZeUaBZgDmOuX9O26Ahf09b5MngbVsG"
     "ITEIhjRdnGn52/ybuQ9A2U2X0jYDoZ7+wCxmKtpC492YuT0jMMNnI+vH/8a58LEqdhKIOBIXdciibyX/vDa38BA9MR50rG9mpUzY"
     "e/kb+4dFZON/D27wl26WRAL++Szyhx6ciI5+AsMvd+0vcrrbtWlkUjaDh8dZ4J/f/HrJECh8cLXrcrlkyaE/aKZqPEb2Tv2FZ8Cv"
     "lJmoDdAjMEk3g7mwAk9egfwzzMgWyfdcxH71i3sbrw9Sdk4pp2HjohJZy2qtZyvgWfp41dY5a0B/CehLDbdQW+crMpOe67rm3Ljm"
     "MdFEVTm3215gliJjr0+VqfMJfTXLKQ7EvgBMMj23649z4OxLiHduOhY4yGK8kjHUHvp/kT32cL9xsPgnLkcgvcBAcEJhrtBT7x+L"
     "AoAnBAAFBygDiwKAMwA+MxE/A4sDgC3/4+utN/8AA4sLgAsABioFASoCCREWEAIRFQQPAQQQJCgDDQOLC4APDCwPBjgoKzQVCjQr"
     "DTgAGS4UBic/BgwDiwOAGEU8ngD/iaYDiwuAGMhYMpG0iEeUQklEzhW3wxoMGgDx92X/AwsBgP8ADQPPqeQB",
     "a4fb79080fafba761f65751785dc3ad54b1958dc6d208b778b0432a892e010e3"),
    ("v1-coin",
     "SU5SWgGeAAAAG+QAAByHsTPu3rSQ2uG7FNnaM7f2+t97hdtC/H32iBgxUAv9FSaLTpfl7SOhVvezr0b532eBZDZBjyKQbR56SUQo"
     "GpTtrm3zB4k+vq3VF+T1QrNEl9hCreOc60QJlbWrkQ/H8X4pd2JGd3DzrW7M0/w+66amPdEQVjPSnBE+EHy+AEjRMVO8of7FfEDi"
     "GvSYQ+BCj1SIM7EUVw61bAvvt1C22rKSt0SnCrdaNMwzCy41NkWqyzSatU6uIrcyqVe3FTncNz44tjJ0thU5hbm3pJ6kIKLlHZml"
     "sqUSo4MkVaWhpmimRqPEn1On66KNEN8cPZy0ms+kkiMfnw2lHp8hnNUmtCP4oTKciCa/JF8fTaEmJlUilaI/JTcYd6WNoomlH6bI"
     "EUyl4SOcIlweFya0og4PiiQcISobLia9HvkkXqZepqymsRZFJnOm4iGGpoWzt6+asK8uvrSYNZkq4y/+pBQk555bowcdJyJDGiyh"
     "fx24oQGhfqFnJCqlayKpI+mknaXspECmNCaEJiGc7iZpLo21LbWT9Nf1",
     "9d5ab11a63ba3405d2a46dba9d1634628295102de8bb41c7ff4e0a1727e0e4de"),
    ("v2-quant",
     "SU5SWgJWF4CwgbKCFIMkQkhIQ4QjtLS5hSMEgE8EgE8EADyGAIgRjEaJIxKQC+oI4RwjkQuaCMkVIRKQC5QIsw4pkQucB6EFHxKQ"
     "C7wHrQMlkQucDKMHIYoQixAGDQcxBxMCwEEJIXHX6g/mCkeAAsuP66vzAwIMM53IEdXJQEAYEIUm1y1xpmTcL0+cb6cV/0r4iEhI"
     "ESbyi/JSWLMlj94EMYg94RICRvScwC+mAkZsMWQrSiQkRXPRwsZgAHuf/QI/MADTHGzL",
     "ec7d5855d0ba85b322de69dd1f41282d5de5e91aef838bb3bb61cacae0df549b"),
    ("v2-sinr",
     "SU5SWgJ4F4CwgbGCFIMkQkhIQ4QjtLS5hSMEgE8EgE8EADyGAIgUjEaNSI5Aj7qJIxiSC6oJmw4fk72USJUDgAGWQ5e7mEaRC5gh"
     "0wojGJIL8AfbBSWTvZRIlQOAAZZDl7uYWJELoB2xCiUSkAueHr0aL5ELvDHdHCmKEIsQCAcGCRkTCRkAJwQABQcoAjPgz9EPAi3/"
     "4+utN/8AAAsABioFASoCCREWEAIRFQQPAQQQJCgDDQIPwz4Gjq50pdBrgwOZSxnnbzACGEU8ngD/iaYCGMhYMpG0iEeUQklEzhW3"
     "wxoMGgDx92X/Av8ADRbCK5I=",
     "a4fb79080fafba761f65751785dc3ad54b1958dc6d208b778b0432a892e010e3"),
    ("v2-coin",
     "SU5SWgIpF4CwgbOCFIMkQkhIQ4QjtLS5hSMEgE8EgE8EADyGAIgQiQoDEIoQixAGIBCAARAw77dQttqykrdEpwq3WjTMMwsuNTZF"
     "qss0mrVOriK3MqlXtxU53Dc+OLYydLYVOYW5t6SepCCi5R2ZpbKlEqODJFWloaZopkajxJ9Tp+uijRDfHD2ctJrPpJIjH58NpR6f"
     "IZzVJrQj+KEynIgmvyRfH02hJiZVIpWiPyU3GHeljaKJpR+myBFMpeEjnCJcHhcmtKIOD4okHCEqGy4mvR75JF6mXqasprEWRSZz"
     "puIhhqaFs7evmrCvLr60mDWZKuMv/qQUJOeeW6MHHSciQxosoX8duKEBoX6hZyQqpWsiqSPppJ2l7KRApjQmhCYhnO4maS6NtS21"
     "259K1w==",
     "9d5ab11a63ba3405d2a46dba9d1634628295102de8bb41c7ff4e0a1727e0e4de"),
]


@pytest.mark.parametrize("name,b64,digest", OLD_FILES, ids=[f[0] for f in OLD_FILES])
def test_old_files_still_decode(name, b64, digest):
    data = base64.b64decode(b64)
    net = decode(data)
    assert hashlib.sha256(b"".join(a.tobytes() for a in weights(net))).hexdigest() == digest
    m = siren(2, 3, [8, 8], generator=torch.Generator().manual_seed(3))
    codec = name.split("-")[1]
    kw = {"quant": dict(bits=6), "sinr": dict(sparsity=3, bits=6, block=8, code_first=True), "coin": {}}[codec]
    with writing_version(int(name[1])):  # and the encoder still writes the same bytes
        assert compress_model(m, codec, **kw) == data


# ---------------------------------------------------------------- hostile per-row fields
def _rows_file(version: int) -> bytes:
    m = siren(2, 3, [8, 12], generator=torch.Generator().manual_seed(0))
    with writing_version(version):
        return compress_model(m, "quant", bits=5, per_row=True, signal=META)


def _repack(data: bytes, edit) -> bytes:
    header, sections = unpack(data)
    header.pop("sizes")
    out = edit(header, sections)
    sections = out if isinstance(out, list) else sections
    return pack(header, sections, version=data[4])


BAD_PARAMS = [{"row_bits": v} for v in (0, 17, -1, 2.5, "8", True, None, [8], 1 << 70)] + [{"bits": 1}]
BAD_RECORD = [-1.0, 1e300, 1e30, "x", None, [0.1, 0.2], True, float(1 << 80)]


@pytest.mark.parametrize("version", [1, 2])
def test_bad_per_row_fields_are_refused_cleanly(version):
    data = _rows_file(version)
    decode(data)
    cases = [lambda h, s, p=p: h["params"].update(p) for p in BAD_PARAMS]
    cases += [lambda h, s, v=v: h["layers"][1].update(wr=v) for v in BAD_RECORD]
    cases += [lambda h, s: h["layers"][0].pop("wr"),
              lambda h, s: h["params"].pop("row_bits"),  # read as per-tensor: no "w"
              lambda h, s: s[:-1],  # a section missing
              lambda h, s: s + [b"x"],  # one too many
              lambda h, s: [s[1], s[0]] + s[2:]]  # row steps and weight codes swapped
    for edit in cases:
        try:
            bad = _repack(data, edit)
        except InvalidInputError:  # a value the v2 header cannot hold
            continue
        with pytest.raises(InvalidFileError):
            decode(bad)
            raise AssertionError(f"decoded {unpack(bad)[0]}")


def test_old_reader_refuses_a_per_row_file():
    """A per-row file has no per-tensor ``w`` record: a reader that ignores ``row_bits`` refuses it."""
    header, _ = unpack(_rows_file(2))
    assert "w" not in header["layers"][0] and header["layers"][0]["wr"] > 0
    assert load_value(dump_value(header["layers"])) == header["layers"]


def test_options_are_validated():
    with pytest.raises(InvalidInputError):
        NETWORK_CODECS.get("quant").make_options(bits=1, per_row=True)
    with pytest.raises(InvalidInputError):
        NETWORK_CODECS.get("quant").make_options(row_bits=17)
    assert replace(NETWORK_CODECS.get("quant").make_options(), per_row=True).per_row
