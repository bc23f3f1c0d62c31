"""Compression to a target quality or size, coefficient fine-tuning, file and image entry points."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import InvalidFileError, InvalidInputError
from ..models import MLP, build_model, load_model, save_model
from ..signals import ImageSignal, Signal, load_signal
from ..utils import atomic_write, resolve_device
from .codecs import CODECS, SinrOptions, SparseModel, compress_model, decode_model, encode_sinr, sparse_code
from .dictionary import sensing_matrix

SPARSITY_GRID = tuple(round(0.02 * i, 2) for i in range(1, 25))  # 0.02 .. 0.48 of k1
BITS_GRID = (6, 7, 8, 10)


@dataclass
class Compressed:
    """Result of a compression: the ``.inrz`` bytes, the decoded model, and what was chosen."""

    data: bytes
    model: MLP
    codec: str
    params: dict[str, Any]
    psnr: float | None = None
    target_met: bool | None = None

    def report(self, pixels: int | None = None) -> dict[str, Any]:
        rep: dict[str, Any] = {"codec": self.codec, "bytes": len(self.data), **self.params}
        if pixels:
            rep["bpp"] = 8.0 * len(self.data) / pixels
        if self.psnr is not None:
            rep["psnr"] = self.psnr
        if self.target_met is not None:
            rep["target_met"] = self.target_met
        return rep


# ------------------------------------------------------------- fine-tuning
class _CodedMLP(nn.Module):
    """The MLP whose coded weight matrices are ``A[:, support] @ coef`` with the supports fixed."""

    def __init__(self, code: SparseModel, device: torch.device) -> None:
        super().__init__()
        self.base = code.model.copy().to(device)
        self.coded: dict[int, tuple[torch.Tensor, tuple[int, int]]] = {}
        self.coefs = nn.ParameterDict()
        for i, layer in enumerate(code.layers):
            if layer is None:
                continue
            atoms = sensing_matrix(layer.k1, layer.k2, code.options.seed).T[layer.idx]  # [n, s, k1]
            self.coded[i] = (torch.from_numpy(atoms).float().to(device), tuple(self.base.weights[i].shape))
            self.coefs[str(i)] = nn.Parameter(torch.from_numpy(layer.coef).float().to(device))
            self.base.weights[i].requires_grad_(False)

    def weight(self, i: int) -> torch.Tensor:
        atoms, (out, inp) = self.coded[i]
        vec = torch.einsum("ns,nsk->nk", self.coefs[str(i)], atoms)
        return vec.reshape(-1)[: out * inp].reshape(out, inp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {f"weights.{i}": self.weight(i) for i in self.coded}
        return torch.func.functional_call(self.base, params, (x,), strict=False)


def finetune_codes(code: SparseModel, signal: Signal, steps: int = 100, lr: float = 1e-4,
                   batch_size: int | None = None, device: str | None = None, seed: int = 0) -> SparseModel:
    """Fine-tune the kept coefficients (supports fixed), biases and uncoded layers on ``signal``.

    An addition to SINR (the paper quantises the OMP coefficients directly).
    """
    if steps <= 0:
        return code
    dev = resolve_device(device)
    net = _CodedMLP(code, dev)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = signal.num_samples()
    batch = batch_size if batch_size else (None if 0 < n <= 1 << 20 else 1 << 16)
    for _ in range(steps):
        coords, targets = signal.train_batch(batch, gen, dev)
        loss, _ = signal.loss(net, coords, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model = net.base.cpu()
    layers = list(code.layers)
    with torch.no_grad():
        for i in net.coded:
            layers[i] = replace(layers[i], coef=net.coefs[str(i)].detach().cpu().double().numpy())
            model.weights[i].copy_(net.weight(i).cpu())
            model.weights[i].requires_grad_(True)
    return SparseModel(model.cpu(), layers, code.options)


# ------------------------------------------------------------- target search
def _evaluate(data: bytes, signal: Signal | None) -> tuple[MLP, float | None]:
    model, _ = decode_model(data)
    return model, (float(signal.evaluate(model)["psnr"]) if signal is not None else None)


def _meets(psnr: float | None, size: int, target_psnr: float | None, target_bytes: int | None) -> bool:
    ok = True
    if target_psnr is not None:
        ok = psnr is not None and psnr >= target_psnr
    if target_bytes is not None:
        ok = ok and size <= target_bytes
    return ok


def compress_to_target(
    model: MLP,
    signal: Signal | None,
    codec: str = "sinr",
    *,
    target_psnr: float | None = None,
    target_bytes: int | None = None,
    bits: int | None = None,
    sparsity: float | None = None,
    options: SinrOptions | None = None,
    bits_grid: Sequence[int] = BITS_GRID,
    sparsity_grid: Sequence[float] = SPARSITY_GRID,
    finetune_steps: int = 0,
    finetune_lr: float = 1e-4,
    meta: dict | None = None,
    device: str | None = None,
) -> Compressed:
    """Compress ``model``, choosing the sparsity and bit depth for a target.

    With ``target_psnr`` (needs ``signal``) it returns the smallest file that reaches the
    PSNR; with ``target_bytes`` the best PSNR (or, without a signal, the largest setting)
    that fits. Without targets it uses ``sparsity``/``bits`` as given. Fixed ``bits`` or
    ``sparsity`` restrict the search. If nothing meets the target, the closest candidate
    is returned with ``target_met=False``.
    """
    if codec not in CODECS:
        raise InvalidInputError(f"unknown codec {codec!r}; choose from {list(CODECS)}")
    if target_psnr is not None and signal is None:
        raise InvalidInputError("a target PSNR needs the signal to measure it")
    _check_args(bits, sparsity, target_bytes, finetune_steps, list(bits_grid), options)
    base = options or SinrOptions()
    bit_list = [int(bits)] if bits is not None else list(bits_grid)
    if target_psnr is None and target_bytes is None:
        bit_list = [int(bits) if bits is not None else base.bits]
    sp_list = [float(sparsity)] if sparsity is not None else list(sparsity_grid)
    if target_psnr is None and target_bytes is None:
        sp_list = [float(sparsity) if sparsity is not None else base.sparsity]

    codes: dict[float, SparseModel] = {}

    def build(sp: float, b: int) -> Compressed:
        if codec == "coin":
            data, params = compress_model(model, "coin", signal=meta), {}
        elif codec == "quant":
            data, params = compress_model(model, "quant", bits=b, signal=meta), {"bits": b}
        else:
            if sp not in codes:
                code = sparse_code(model, replace(base, sparsity=sp), device)
                if finetune_steps and signal is not None:
                    code = finetune_codes(code, signal, finetune_steps, finetune_lr, device=device)
                codes[sp] = code
            opts = replace(base, sparsity=sp, bits=b)
            data = encode_sinr(replace(codes[sp], options=opts), meta)
            params = {"sparsity": sp, "bits": b, "dense_bits": opts.dense(), "overcomplete": opts.overcomplete,
                      "finetune_steps": finetune_steps}
        dec, psnr = _evaluate(data, signal)
        return Compressed(data, dec, codec, params, psnr)

    if codec == "coin":
        bit_list, sp_list = [16], [0.0]
    elif codec == "quant":
        sp_list = [0.0]
    candidates: list[Compressed] = []
    for b in bit_list:
        candidates += _search_sparsity(lambda sp, b=b: build(sp, b), sp_list, target_psnr, target_bytes)
    ok = [c for c in candidates if _meets(c.psnr, len(c.data), target_psnr, target_bytes)]
    if target_psnr is None and target_bytes is None:
        best = candidates[0]
    elif ok:
        best = min(ok, key=lambda c: len(c.data)) if target_psnr is not None else \
            max(ok, key=lambda c: (c.psnr if c.psnr is not None else 0.0, len(c.data)))
    else:  # closest: the best PSNR, or the smallest file for a size target
        best = max(candidates, key=lambda c: c.psnr or 0.0) if target_psnr is not None else \
            min(candidates, key=lambda c: len(c.data))
    if target_psnr is not None or target_bytes is not None:
        best.target_met = bool(ok)
    return best


def _check_args(bits, sparsity, target_bytes, finetune_steps, bits_grid, options) -> None:
    if any(not 1 <= int(b) <= 16 for b in ([bits] if bits is not None else []) + bits_grid):
        raise InvalidInputError("bit depths must be between 1 and 16")
    if sparsity is not None and not sparsity > 0:
        raise InvalidInputError("sparsity must be positive (a fraction of the vector length, or a count)")
    if target_bytes is not None and target_bytes < 1:
        raise InvalidInputError("the target size must be positive")
    if finetune_steps < 0:
        raise InvalidInputError("fine-tuning steps must be >= 0")
    if options is not None and (options.overcomplete < 1 or options.block < 8 or options.seed < 0):
        raise InvalidInputError("need overcomplete >= 1, block >= 8 and a non-negative seed")


def _search_sparsity(build, grid: list[float], target_psnr: float | None, target_bytes: int | None) -> list[Compressed]:
    """Binary search along ``grid`` (quality and size grow with it) for the best feasible point."""
    if len(grid) == 1 or (target_psnr is None and target_bytes is None):
        return [build(grid[0])]
    tried: dict[int, Compressed] = {}

    def at(i: int) -> Compressed:
        if i not in tried:
            tried[i] = build(grid[i])
        return tried[i]

    lo, hi = 0, len(grid) - 1
    if target_psnr is not None:  # smallest index reaching the PSNR (and within the size)
        while lo < hi:
            mid = (lo + hi) // 2
            if at(mid).psnr is not None and at(mid).psnr >= target_psnr:
                hi = mid
            else:
                lo = mid + 1
    else:  # largest index within the size budget
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(at(mid).data) <= target_bytes:
                lo = mid
            else:
                hi = mid - 1
    at(lo)
    return list(tried.values())


# ------------------------------------------------------------- files
def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


def read_bytes(path: str | os.PathLike, limit: int = 1 << 30) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"{path}: no such file")
    if path.stat().st_size > limit:
        raise InvalidFileError(f"{path}: larger than {limit} bytes, not an .inrz file")
    return path.read_bytes()


def _pixels(meta: dict | None) -> int | None:
    if meta and meta.get("kind") == "image" and isinstance(meta.get("shape"), list) and len(meta["shape"]) == 2:
        try:
            return int(meta["shape"][0]) * int(meta["shape"][1])
        except (TypeError, ValueError):
            return None
    return None


def compress_file(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    codec: str = "sinr",
    *,
    sparsity: float | None = None,
    bits: int | None = None,
    target_psnr: float | None = None,
    target_bytes: int | None = None,
    signal_path: str | os.PathLike | None = None,
    finetune_steps: int = 0,
    overcomplete: float = 8.0,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, Any]:
    """Compress a model file into ``.inrz``; returns the report (``bytes``, ``psnr``, ``bpp``...)."""
    model, header = load_model(model_path, device="cpu")
    meta = header.get("signal") or {}
    signal = load_signal(signal_path) if signal_path else None
    if finetune_steps and signal is None:
        raise InvalidInputError("fine-tuning needs the signal (--signal)")
    t0 = time.perf_counter()
    result = compress_to_target(model, signal, codec, target_psnr=target_psnr, target_bytes=target_bytes,
                                bits=bits, sparsity=sparsity, options=SinrOptions(overcomplete=overcomplete, seed=seed),
                                finetune_steps=finetune_steps, meta=meta, device=device)
    write_bytes(out_path, result.data)
    rep = result.report(_pixels(meta))
    rep.update(output=str(out_path), original_bytes=4 * model.num_params(),
               ratio=4 * model.num_params() / len(result.data), seconds=time.perf_counter() - t0)
    return rep


def decompress_file(inrz_path: str | os.PathLike, out_path: str | os.PathLike) -> dict[str, Any]:
    """Decode ``.inrz`` into an inrkit model file (safetensors) carrying the signal metadata."""
    model, header = decode_model(read_bytes(inrz_path))
    save_model(model, out_path, signal=header.get("signal") or None, extra=header.get("extra") or None)
    return {"output": str(out_path), "codec": header["codec"], "widths": model.widths,
            "params": model.num_params(), "bytes": Path(inrz_path).stat().st_size}


# ------------------------------------------------------------- images end to end
def default_hidden(pixels: int, codec: str, bpp: float | None, depth: int = 3) -> list[int]:
    """Hidden widths for an image: sized to the bit budget, or to the image without one."""
    if bpp is None:
        return [int(min(256, max(32, round(math.sqrt(pixels) / 4))))] * depth
    bits_per_param = {"sinr": 2.5, "quant": 6.0, "coin": 16.0}[codec]
    params = bpp * pixels / bits_per_param
    # params ~= (depth - 1) w^2 + (2 + depth + 3 + 3) w
    a, b = depth - 1, depth + 8
    w = (-b + math.sqrt(b * b + 4 * a * params)) / (2 * a)
    return [int(max(8, round(w)))] * depth


def encode_image(
    image_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    bpp: float | None = None,
    target_psnr: float | None = None,
    codec: str = "sinr",
    hidden: Sequence[int] | None = None,
    arch: str = "siren",
    steps: int = 2000,
    lr: float = 2e-4,
    finetune_steps: int = 0,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit an INR to an image and compress it to a bit rate or a PSNR; writes ``out_path`` (.inrz)."""
    from ..train import FitConfig, fit

    if bpp is not None and not bpp > 0:
        raise InvalidInputError("--bpp must be positive")
    signal = load_signal(image_path)
    if not isinstance(signal, ImageSignal):
        raise InvalidInputError(f"{image_path}: not an image")
    pixels = signal.shape[0] * signal.shape[1]
    hidden = list(hidden) if hidden else default_hidden(pixels, codec, bpp)
    model = build_model(arch, 2, signal.out_dim, hidden, generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    fitted = fit(model, signal, FitConfig(steps=steps, lr=lr, seed=seed, device=device, progress=progress,
                                          target_psnr=None if target_psnr is None else target_psnr + 1.0))
    fit_s = time.perf_counter() - t0
    model = fitted.model.cpu()
    target_bytes = None if bpp is None else int(bpp * pixels / 8)
    result = compress_to_target(model, signal, codec, target_psnr=target_psnr, target_bytes=target_bytes,
                                finetune_steps=finetune_steps, options=SinrOptions(seed=seed),
                                meta=signal.metadata(), device=device)
    write_bytes(out_path, result.data)
    rep = result.report(pixels)
    rep.update(output=str(out_path), hidden=hidden, fit_psnr=float(fitted.metrics["psnr"]), fit_steps=fitted.steps,
               fit_seconds=fit_s, seconds=time.perf_counter() - t0)
    return rep


def check_image_meta(meta: Any, out_dim: int) -> dict[str, Any]:
    """Validate the image metadata of an ``.inrz`` header before rendering from it."""
    if not isinstance(meta, dict) or meta.get("kind") != "image":
        raise InvalidFileError("the .inrz file does not hold an image")
    shape = meta.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(s) is int and 1 <= s <= 1 << 15 for s in shape)
            and shape[0] * shape[1] <= 1 << 26):
        raise InvalidFileError("the .inrz image shape is invalid")
    for key in ("value_offset", "value_scale"):
        v = meta.get(key)
        if not (isinstance(v, list) and len(v) == out_dim and all(type(x) in (int, float) and math.isfinite(x) for x in v)):
            raise InvalidFileError(f"the .inrz image field {key!r} is invalid")
    if meta.get("channels") != out_dim:
        raise InvalidFileError("the .inrz image channel count does not match the model")
    return meta


def decode_image(inrz_path: str | os.PathLike, out_path: str | os.PathLike,
                 reference: str | os.PathLike | None = None) -> dict[str, Any]:
    """Decode an image ``.inrz`` to PNG; with ``reference`` also report the PSNR against it."""
    from ..signals import render_model

    data = read_bytes(inrz_path)
    model, header = decode_model(data)
    meta = check_image_meta(header.get("signal"), model.out_dim)
    if Path(out_path).suffix.lower() != ".png":
        raise InvalidInputError("decoded images are written as .png")
    render_model(model, meta, out_path)
    h, w = meta["shape"]
    rep: dict[str, Any] = {"output": str(out_path), "bytes": len(data), "bpp": 8.0 * len(data) / (h * w),
                           "codec": header["codec"], "shape": [h, w]}
    if reference is not None:
        rep["psnr"] = float(load_signal(reference).evaluate(model)["psnr"])
    return rep
