"""Compression to a target quality or size, and the file and image workflows (torch side).

The codecs come from :data:`inrkit.compress.NETWORK_CODECS`; decoding goes through the standalone
:mod:`inrkit.compress.decode.decoder`; the image workflow fits through :func:`inrkit.train.fit`.
"""
from __future__ import annotations

import functools
import inspect
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from inrkit.compress.decode.decoder import read_file
from inrkit.compress.encode.model import decode_model
from inrkit.compress.encode.network import NETWORK_CODECS, NetworkCodec
from inrkit.compress.encode.qat import QAT_LR
from inrkit.errors import InvalidFileError, InvalidInputError, warn
from inrkit.limits import (
    MAX_BPP,
    MAX_OVERCOMPLETE,
    MAX_SPARSITY_COUNT,
    MIN_INRZ_BYTES,
    check_fraction_or_count,
    check_inrz_image,
    check_range,
)
from inrkit.metrics import size_report, warn_if_larger
from inrkit.models import MLP, load_model, save_model
from inrkit.signals import Signal, check_metadata
from inrkit.signals.match import load_matching_signal
from inrkit.signals.readers import open_image
from inrkit.train import FitConfig
from inrkit.utils import atomic_write

SPARSITY_GRID = tuple(round(0.02 * i, 2) for i in range(1, 25))  # 0.02 .. 0.48 of k1
DEFAULT_MAX_LOSS_DB = 1.0
"""``compress`` with the signal and no target: the smallest file within this many dB of the model's own PSNR."""
RULE_FINETUNE_STEPS = 100
"""When no setting of a codec that fine-tunes (sinr) meets that rule, it searches again with this many steps of
coefficient fine-tuning (on 64x3 SIRENs of 128x128 Kodak crops: -0.5 dB at sparsity 0.48 and 10 bits, where the
plain codes lose 5.8-10.3 dB; bench/results/compress_default_rule.json)."""
BITS_GRID = (6, 7, 8, 10, 11, 12)  # 11-12: what keeps a 64x3 SIREN within 1 dB (compress_default_rule.json)
QAT_BITS_GRID = (3, 4, 5, 6, 8, 10)  # after QAT, 3-5 bits reach rates 6 bits cannot (docs/compress.md)
_CAST = {"bits": int, "sparsity": float}


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
        """Plain numbers for JSON: codec, bytes, chosen parameters, ``bpp`` (given ``pixels``), PSNR, target met."""
        rep: dict[str, Any] = {"codec": self.codec, "bytes": len(self.data), **self.params}
        if pixels:
            rep["bpp"] = 8.0 * len(self.data) / pixels
        if self.psnr is not None:
            rep["psnr"] = self.psnr
        if self.target_met is not None:
            rep["target_met"] = self.target_met
        return rep


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


@dataclass
class CompressConfig:
    """How a network is compressed (:func:`compress_to_target`, :func:`compress_file`, ``inrkit compress``).

    Args:
        codec: a registered network codec.
        target_psnr: smallest file reaching this PSNR in dB (needs the signal). Without a target, bits or sparsity,
            the rate rule of compress_file: with the signal, the smallest file within 1 dB of the model's own PSNR
            (sinr: fine-tuned 100 steps when the plain codes cannot); without it, the codec's conservative setting
            (sinr: sparsity 0.48, 10 bits; quant: 12 bits; docs/compress.md).
        target_bytes: best PSNR within this many bytes.
        bits: bit depth of coefficients / weights (default: the rate rule, or searched for a target).
        sparsity: atoms per weight vector: a fraction of its length (<1) or a count (default: the rate rule, or
            searched for a target).
        finetune_steps: steps of coefficient fine-tuning after the codec's transform (needs the signal).
        finetune_lr: fine-tuning learning rate.
        qat_steps: steps of quantisation-aware fine-tuning before coding, one run per bit depth tried (needs the
            signal; ``quant`` then stores one learned step per weight row).
        qat_lr: its learning rate.
        overcomplete: dictionary atoms per vector length (k2/k1).
        seed: dictionary seed.
        bits_grid: bit depths a target search tries (default :data:`BITS_GRID`, with ``qat_steps``
            :data:`QAT_BITS_GRID`).
        sparsity_grid: sparsities a target search tries (binary search; quality and size grow along it).
        device: where the transform and fine-tuning run (cpu, cuda, ...; default: pick automatically).
        progress: show a progress bar over the search and fine-tuning (on a terminal).
    """

    codec: str = "sinr"
    target_psnr: float | None = None
    target_bytes: int | None = None
    bits: int | None = None
    sparsity: float | None = None
    finetune_steps: int = 0
    finetune_lr: float = 1e-4
    qat_steps: int = 0
    qat_lr: float = QAT_LR
    overcomplete: float = 8.0
    seed: int = 0
    bits_grid: Sequence[int] | None = None
    sparsity_grid: Sequence[float] = SPARSITY_GRID
    device: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        NETWORK_CODECS.get(self.codec)
        check_range("overcomplete", self.overcomplete, 1, MAX_OVERCOMPLETE, optional=False)
        check_fraction_or_count("sparsity", self.sparsity, MAX_SPARSITY_COUNT)
        check_range("qat_steps", self.qat_steps, 0, optional=False)
        _check_args(self.bits, self.sparsity, self.target_bytes, self.finetune_steps, self.search_bits)

    @property
    def search_bits(self) -> list[int]:
        """The bit depths a target search tries."""
        return list(self.bits_grid if self.bits_grid is not None else QAT_BITS_GRID if self.qat_steps else BITS_GRID)


def compress_to_target(model: MLP, signal: Signal | None, config: CompressConfig | None = None, *,
                       options: Any = None, meta: dict | None = None) -> Compressed:
    """Compress ``model``, choosing the codec's searched options (bit depth, sparsity) for a target.

    With ``config.target_psnr`` (needs ``signal``) it returns the smallest file that reaches the
    PSNR; with ``config.target_bytes`` the best PSNR (or, without a signal, the largest setting)
    that fits. Without targets it uses ``sparsity``/``bits`` as given. Fixed ``bits`` or
    ``sparsity`` restrict the search. If nothing meets the target, the closest candidate
    is returned with ``target_met=False``. What is searched is the codec's ``search``.

    Args:
        model: the fitted network.
        signal: the signal it represents (to measure PSNR and to fine-tune), or ``None``.
        config: codec, targets, search grids and tuning (:class:`CompressConfig`; defaults when ``None``).
        options: the codec's options (other fields than the searched ones); default: the codec's options with
            ``config``'s ``overcomplete`` and ``seed``.
        meta: signal metadata stored in the file.
    """
    cfg = config or CompressConfig()
    codec, target_psnr, target_bytes, qat_steps = cfg.codec, cfg.target_psnr, cfg.target_bytes, cfg.qat_steps
    finetune_steps, device, progress = cfg.finetune_steps, cfg.device, cfg.progress
    c = NETWORK_CODECS.get(codec)
    if target_psnr is not None and signal is None:
        raise InvalidInputError("a target PSNR needs the signal to measure it")
    if qat_steps and signal is None:
        raise InvalidInputError("quantisation-aware training needs the signal")
    base = _codec_options(c, options if options is not None else
                          c.make_options(overcomplete=cfg.overcomplete, seed=cfg.seed))
    base = c.qat_options(base) if qat_steps else base
    targeted = target_psnr is not None or target_bytes is not None
    bit_list = _axis(c, "bits", cfg.bits, cfg.search_bits, base, targeted)
    sp_list = _axis(c, "sparsity", cfg.sparsity, cfg.sparsity_grid, base, targeted)
    prepared: dict[Any, Any] = {}
    tuned: dict[Any, Any] = {}
    bar = _search_bar(progress, len(bit_list) * _search_length(len(sp_list), targeted), codec)

    def source(opts: Any) -> Any:
        """The model the codec transforms: after QAT for ``opts``'s bit depth, when asked for."""
        if not qat_steps or signal is None:
            return model
        key = c.qat_bits(opts)
        if key not in tuned:
            tuned[key] = c.qat(model, signal, opts, qat_steps, cfg.qat_lr, device, progress)
        return tuned[key]

    def build(sp: float | None, b: int | None) -> Compressed:
        opts = replace(base, **{k: v for k, v in (("sparsity", sp), ("bits", b)) if v is not None})
        bar.set_postfix_str(", ".join(f"{k}={v}" for k, v in (("bits", b), ("sparsity", sp)) if v is not None))
        key = (sp, c.qat_bits(opts) if qat_steps else None)
        if key not in prepared:
            p = c.prepare(source(opts), opts, device)
            if finetune_steps and signal is not None:
                tune = {"progress": True} if progress and "progress" in inspect.signature(c.finetune).parameters else {}
                p = c.finetune(p, signal, finetune_steps, cfg.finetune_lr, device, **tune)
            prepared[key] = p
        data = c.encode_prepared(prepared[key], opts, meta)
        params = dict(c.report(opts), **({"finetune_steps": finetune_steps} if c.can_finetune else {}),
                      **({"qat_steps": qat_steps} if qat_steps else {}))
        dec, psnr = _evaluate(data, signal)
        bar.update(1)
        return Compressed(data, dec, codec, params, psnr)

    candidates: list[Compressed] = []
    with bar:  # its total is the most candidates a binary search builds; it often needs fewer
        for b in bit_list:
            candidates += _search_sparsity(functools.partial(build, b=b), sp_list, target_psnr, target_bytes)
        bar.total = bar.n
        bar.refresh()
    return _choose(candidates, target_psnr, target_bytes)


def _search_length(n: int, targeted: bool) -> int:
    """Most candidates the binary search of :func:`_search_sparsity` builds along a grid of ``n``."""
    return 1 if n <= 1 or not targeted else math.ceil(math.log2(n)) + 1


def _search_bar(progress: bool, total: int, codec: str) -> Any:
    """The candidates' bar (tqdm on stderr; disabled when ``progress`` is off or stderr is no terminal)."""
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"compress ({codec})", unit="try", file=sys.stderr, leave=False,
                disable=None if progress else True, dynamic_ncols=True)


def _codec_options(codec: NetworkCodec, options: Any) -> Any:
    """``options`` as the codec's options type (fields it lacks dropped; defaults when ``None``)."""
    if options is None:
        return codec.make_options()
    if isinstance(options, codec.options_type):
        return options
    return codec.make_options(**asdict(options))


def _axis(codec: NetworkCodec, name: str, fixed: float | None, grid: Sequence[float], base: Any,
          targeted: bool) -> list[Any]:
    """Values of option ``name`` to try: ``[None]`` when the codec does not search it."""
    if name not in codec.search:
        return [None]
    if fixed is not None:
        return [_CAST[name](fixed)]
    return list(grid) if targeted else [getattr(base, name)]


def _choose(candidates: list[Compressed], target_psnr: float | None, target_bytes: int | None) -> Compressed:
    """The best candidate for the targets (the first one without targets)."""
    ok = [c for c in candidates if _meets(c.psnr, len(c.data), target_psnr, target_bytes)]
    if target_psnr is None and target_bytes is None:
        return candidates[0]
    if ok:
        best = min(ok, key=lambda c: len(c.data)) if target_psnr is not None else \
            max(ok, key=lambda c: (c.psnr if c.psnr is not None else 0.0, len(c.data)))
    else:  # closest: the best PSNR, or the smallest file for a size target
        best = max(candidates, key=lambda c: c.psnr or 0.0) if target_psnr is not None else \
            min(candidates, key=lambda c: len(c.data))
    best.target_met = bool(ok)
    return best


def _check_args(bits: int | None, sparsity: float | None, target_bytes: int | None, finetune_steps: int,
                bits_grid: list[int]) -> None:
    if any(not 1 <= int(b) <= 16 for b in ([bits] if bits is not None else []) + bits_grid):
        raise InvalidInputError("bit depths must be between 1 and 16")
    if sparsity is not None and not sparsity > 0:
        raise InvalidInputError("sparsity must be positive (a fraction of the vector length, or a count)")
    if target_bytes is not None and target_bytes < 1:
        raise InvalidInputError("the target size must be positive")
    if finetune_steps < 0:
        raise InvalidInputError("fine-tuning steps must be >= 0")


def _search_sparsity(build: Callable[[Any], Compressed], grid: list[Any], target_psnr: float | None,
                     target_bytes: int | None) -> list[Compressed]:
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
            psnr = at(mid).psnr
            if psnr is not None and psnr >= target_psnr:
                hi = mid
            else:
                lo = mid + 1
    else:  # largest index within the size budget
        assert target_bytes is not None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(at(mid).data) <= target_bytes:
                lo = mid
            else:
                hi = mid - 1
    at(lo)
    return list(tried.values())


# ------------------------------------------------------------- files
def _as_mlp(model: Any) -> MLP:
    """``model`` if it is an :class:`MLP` (what the codecs store), else an error."""
    if not isinstance(model, MLP):
        raise InvalidInputError(f"the .inrz codecs store MLP models, not {type(model).__name__}")
    return model


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


def _pixels(meta: dict | None) -> int | None:
    if meta and meta.get("kind") == "image" and isinstance(meta.get("shape"), list) and len(meta["shape"]) == 2:
        try:
            return int(meta["shape"][0]) * int(meta["shape"][1])
        except (TypeError, ValueError):
            return None
    return None


def compress_file(model_path: str | os.PathLike, out_path: str | os.PathLike, config: CompressConfig | None = None,
                  *, signal_path: str | os.PathLike | None = None, crop: Sequence[int] | None = None) -> dict[str, Any]:
    """Compress a model file into ``.inrz``; returns the report (``bytes``, ``psnr``, ``bpp``...).

    Without a target, bits or sparsity in ``config``, the rate rule applies (:class:`CompressConfig`'s
    ``target_psnr``).

    Args:
        model_path: the model file (``.safetensors`` or ``.npz``).
        out_path: the ``.inrz`` file to write.
        config: codec, targets and tuning (:class:`CompressConfig`; defaults when ``None``).
        signal_path: the signal the model represents (to measure PSNR).
        crop: image window of the signal, ROW0:ROW1,COL0:COL1 (as the model was fitted).
    """
    cfg = config or CompressConfig()
    if (cfg.finetune_steps or cfg.qat_steps) and not signal_path:
        raise InvalidInputError("fine-tuning and quantisation-aware training need the signal (--signal)")
    c, codec = NETWORK_CODECS.get(cfg.codec), cfg.codec
    loaded, header = load_model(model_path, device="cpu")
    model = _as_mlp(loaded)
    meta = header.get("signal") or {}
    signal = load_matching_signal(Path(signal_path), header, "--signal", crop=crop) if signal_path else None
    if signal is not None and (signal.dim, signal.out_dim) != (model.coord_dim, model.out_dim):
        raise InvalidInputError(f"model maps {model.coord_dim}->{model.out_dim} but the signal is "
                                f"{signal.dim}->{signal.out_dim}")
    t0 = time.perf_counter()
    cfg, rule = _rate_rule(cfg, model, signal)
    result = compress_to_target(model, signal, cfg, meta=meta)
    if "model_psnr" in rule and not result.target_met and c.can_finetune and not cfg.finetune_steps:
        # the rule's second try: coefficients fine-tuned
        tuned = compress_to_target(model, signal, replace(cfg, finetune_steps=RULE_FINETUNE_STEPS), meta=meta)
        result = tuned if tuned.target_met or (tuned.psnr or 0.0) > (result.psnr or 0.0) else result
    write_bytes(out_path, result.data)
    rep = {**result.report(_pixels(meta)), **rule}
    if "model_psnr" in rule and not result.target_met:
        warn(f"{out_path}: no {codec} setting keeps the PSNR within {DEFAULT_MAX_LOSS_DB:g} dB of the model's "
             f"{rule['model_psnr']:.2f} dB: the best loses {rule['model_psnr'] - (result.psnr or 0.0):.2f} dB "
             "(--finetune, --qat-steps or another --codec get closer)")
    size = size_report(len(result.data), meta)
    rep.update(output=str(out_path), original_bytes=4 * model.num_params(),
               compression=4 * model.num_params() / len(result.data), seconds=time.perf_counter() - t0, **size)
    warn_if_larger(size, str(out_path))
    return rep


def _rate_rule(cfg: CompressConfig, model: MLP, signal: Signal | None) -> tuple[CompressConfig, dict[str, Any]]:
    """``cfg`` with the rate rule applied (no target, bits or sparsity given) and the rule's report entries."""
    if cfg.target_psnr is not None or cfg.target_bytes is not None:
        return cfg, {"rate_rule": "target"}
    if cfg.bits is not None or cfg.sparsity is not None:
        return cfg, {"rate_rule": "as given"}
    if signal is not None:  # the smallest file within DEFAULT_MAX_LOSS_DB of the model's own PSNR
        own = float(signal.evaluate(model)["psnr"])
        return replace(cfg, target_psnr=own - DEFAULT_MAX_LOSS_DB), {
            "rate_rule": f"within {DEFAULT_MAX_LOSS_DB:g} dB of the model's own PSNR", "model_psnr": own}
    safe = NETWORK_CODECS.get(cfg.codec).safe_options  # nothing to measure against: the conservative setting
    return replace(cfg, bits=safe.get("bits"), sparsity=safe.get("sparsity")), {
        "rate_rule": "conservative setting (no --signal to measure against)"}


def decompress_file(inrz_path: str | os.PathLike, out_path: str | os.PathLike) -> dict[str, Any]:
    """Decode ``.inrz`` into an inrkit model file (safetensors) carrying the signal metadata.

    Args:
        inrz_path: the ``.inrz`` file.
        out_path: the model file to write (``.safetensors``).
    """
    model, header = decode_model(read_file(inrz_path))
    try:
        save_model(model, out_path, signal=header.get("signal") or None, extra=header.get("extra") or None)
    except InvalidInputError as exc:  # the file's own fields (omegas, metadata) are beyond a model file's limits
        raise InvalidFileError(f"{inrz_path}: decodes to a model that cannot be saved ({exc})") from None
    return {"output": str(out_path), "codec": header["codec"], "widths": model.widths,
            "params": model.num_params(), "bytes": Path(inrz_path).stat().st_size}


# ------------------------------------------------------------- images end to end
def default_hidden(pixels: int, codec: str, bpp: float | None, depth: int = 3) -> list[int]:
    """Hidden widths for an image: sized to the bit budget (the codec's rough rate), or to the image."""
    if bpp is None:
        return [int(min(256, max(32, round(math.sqrt(pixels) / 4))))] * depth
    params = bpp * pixels / NETWORK_CODECS.get(codec).bits_per_param
    # params ~= (depth - 1) w^2 + (2 + depth + 3 + 3) w
    a, b = depth - 1, depth + 8
    w = (-b + math.sqrt(b * b + 4 * a * params)) / (2 * a)
    return [int(max(8, round(w)))] * depth


@dataclass
class EncodeConfig(FitConfig):
    """Fitting settings of :func:`encode_image`: a FitConfig with encode's own defaults.

    Args:
        steps: fitting steps.
        lr: Adam's learning rate.
        batch_size: points per step (default: the whole image).
        schedule: learning-rate schedule (constant, cosine, exponential).
        precision: GEMM precision of the fit: fp32 (the committed benchmark numbers), bf16 or auto.
        seed: seed of the network, the batches and the dictionary.
        device: where to fit and compress (cpu, cuda, cuda:1, mps; default: pick automatically).
        progress: show a progress bar.
    """

    steps: int = 2000
    lr: float = 2e-4
    precision: str = "fp32"


def check_bpp_target(image_path: str | os.PathLike, bpp: float | None) -> None:
    """Refuse a ``bpp`` target no ``.inrz`` file can meet for this image, from the image header alone.

    ``bpp x pixels / 8`` bytes must hold at least :data:`inrkit.limits.MIN_INRZ_BYTES` (the container
    and header of the smallest file): checked before the image is decoded or anything is fitted.
    """
    check_range("bpp", bpp, 0, MAX_BPP, low_open=True)
    if bpp is None:
        return
    with open_image(Path(image_path)) as img:
        width, height = img.size
    budget = bpp * width * height / 8
    if budget < MIN_INRZ_BYTES:
        raise InvalidInputError(f"--bpp {bpp:g} allows {budget:.3g} bytes for a {width}x{height} image; an .inrz "
                                f"file needs at least {MIN_INRZ_BYTES} bytes (ask for at least "
                                f"{8 * MIN_INRZ_BYTES / (width * height):.3g} bpp)")


def refuse_network_options(hidden: Sequence[int] | None, arch: str, finetune_steps: int,
                           qat_steps: int | None = None) -> None:
    """The latent codec sizes its own decoder: refuse the network codecs' sizing and tuning options."""
    if hidden or finetune_steps or qat_steps or arch != "siren":
        raise InvalidInputError("--hidden, --arch, --finetune and --qat-steps belong to the network codecs (sinr, "
                                "quant, coin); the latent codec sizes its own decoder (--preset)")


def _check_image(file_bytes: int, what: str, header: dict, widths: list[int]) -> None:
    """Refuse a file that holds no image, or one larger than its size justifies (before any decoding)."""
    meta = check_metadata(header.get("signal"), widths[-1], kind="image")
    shape = meta.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(x) is int and x >= 1 for x in shape)):
        raise InvalidFileError(f"{what}: the image metadata needs a shape [height, width]")
    check_inrz_image(file_bytes, shape[0] * shape[1], render_cost(widths), what)


def render_cost(widths: list[int]) -> int:
    """Multiply-adds per rendered point of a network (a nonlinearity counted as 16)."""
    return sum(widths[i + 1] * (widths[i] + 1) for i in range(len(widths) - 1)) + 16 * sum(widths[1:-1])
