"""``prune_file``: the library function behind ``inrkit prune``; ``PruneConfig``: what it removes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, cast

import torch

from inrkit.errors import InvalidInputError, warn
from inrkit.limits import MAX_PRUNE_POINTS, check_fraction_or_count, check_range
from inrkit.metrics import size_report, warn_if_larger
from inrkit.models.io import load_model, save_model
from inrkit.models.mlp import MLP
from inrkit.models.surgery import find_group
from inrkit.prune.criteria import CRITERIA, InterpolativeDecomposition, keep_count
from inrkit.prune.interpolative import id_prune_report, id_summary
from inrkit.prune.model import domain_points, prune_model


@dataclass
class PruneConfig:
    """What :func:`prune_file` removes and how it fine-tunes (the defaults of the library and of ``inrkit prune``).

    Args:
        method: criterion, a name in inrkit.prune.CRITERIA (l1 is AIRe's; id: interpolative decomposition).
        layers: hidden layers to prune, e.g. 0,1 (none: all).
        keep: neurons kept per layer: a fraction in (0, 1) or a whole count >= 1 (none with no eps: 0.5; id:
            rank-targeted, the first pivots of the column-pivoted QR).
        eps: drop neurons scoring <= eps (id: relative tolerance; the output says what it kept).
        finetune: fine-tuning steps of Adam after pruning (needs a signal).
        lr: fine-tuning learning rate.
        points: uniform domain points of [-1, 1]^d on which ID samples the activations.
        seed: seed of the criterion and fine-tuning.
    """

    method: str = "l1"
    layers: tuple[int, ...] | None = None
    keep: float | None = None
    eps: float | None = None
    finetune: int = 0
    lr: float = 1e-4
    points: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        CRITERIA.get(self.method)  # an unknown name is refused with the registry's choices
        if self.keep is None and self.eps is None:
            self.keep = 0.5
        if isinstance(self.finetune, bool) or not isinstance(self.finetune, int) or self.finetune < 0:
            raise InvalidInputError(f"finetune must be an integer >= 0, got {self.finetune!r}")
        check_fraction_or_count("keep", self.keep)
        check_range("eps", self.eps, 0)
        check_range("lr", self.lr, 0, low_open=True, optional=False)
        check_range("points", self.points, 1, MAX_PRUNE_POINTS, optional=False)
        check_range("seed", self.seed, 0, optional=False)
        if self.layers is not None:
            self.layers = tuple(int(i) for i in self.layers)
            if any(i < 0 for i in self.layers):
                raise InvalidInputError(f"layers must be >= 0, got {list(self.layers)}")


def _psnr(model, signal) -> float | None:
    return None if signal is None else float(signal.evaluate(model)["psnr"])


@torch.no_grad()
def _id_prune(model: MLP, pts: torch.Tensor, layers: Sequence[int] | None, keep: float | None,
              eps: float | None) -> tuple[MLP, dict[str, Any]]:
    """The ``id`` path of :func:`prune_file`: per-layer reports, the measured output change at the sample
    points (``id_output_error``: relative RMS) and, when nothing was removed, a ``note`` with tolerances."""
    reference = model(pts)
    names = [g.name for g in model.prunable_groups()] if layers is None else [str(i) for i in layers]
    ranks = None if keep is None else [keep_count(find_group(model, name).width, keep) for name in names]
    model, reports = id_prune_report(model, pts, names, ranks=ranks, eps=eps)
    change = float((model(pts) - reference).norm() / reference.norm().clamp_min(1e-30))
    info: dict[str, Any] = {"id_layers": reports, "id_output_error": change}
    note = id_summary(reports, eps)
    if note is not None:
        info["note"] = note
    return model, info


def prune_file(model_path: str | Path, output: str | Path, config: PruneConfig | None = None,
               signal_path: str | Path | None = None, crop: Sequence[int] | None = None,
               device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Prune a saved model as ``config`` says and save it to ``output``.

    Args:
        signal_path: signal file, to measure PSNR before and after and to fine-tune (``config.finetune``).
        crop: image window of the signal, ROW0:ROW1,COL0:COL1 (as the model was fitted).
        device: cpu, cuda, cuda:1, mps (none: pick automatically).
        progress: show a progress bar.

    ``config.keep`` (fraction or count per layer) or ``config.eps`` (score threshold; ID tolerance for ``id``)
    chooses how much to keep. ID's result adds ``id_layers`` (per layer: width, kept, measured relative error,
    ``spectral_rank`` at ``eps``, tolerances keeping 75%/50%), ``id_output_error`` and, when no neuron was
    removed, a ``note`` suggesting a tolerance. The signal must match the model header (kind, shape, crop), else
    :class:`InvalidInputError`.
    """
    cfg = config or PruneConfig()
    method, layers, keep, eps, seed = cfg.method, cfg.layers, cfg.keep, cfg.eps, cfg.seed
    criterion = CRITERIA.get(method)
    if cfg.finetune and signal_path is None:
        raise InvalidInputError("--finetune needs --signal")
    loaded, header = load_model(model_path, device=device or "cpu")
    if not isinstance(loaded, MLP):
        raise InvalidInputError(f"{model_path}: prune_file prunes coordinate MLPs; use nerf_prune_file for a NeRF")
    model = loaded
    signal = None
    if signal_path is not None:
        from inrkit.signals.match import load_matching_signal

        signal = load_matching_signal(signal_path, header, "--signal", crop=crop, seed=seed)
        if (signal.dim, signal.out_dim) != (model.coord_dim, model.out_dim):
            raise InvalidInputError(f"model maps {model.coord_dim}->{model.out_dim} but the signal is "
                                    f"{signal.dim}->{signal.out_dim}")
    generator = torch.Generator().manual_seed(seed)
    before = {"params": model.num_params(), "widths": model.widths, "flops": model.flops_per_point(),
              "psnr": _psnr(model, signal)}
    pts = domain_points(model, cfg.points, generator) if criterion.needs_points else None
    id_info: dict[str, Any] = {}
    if isinstance(criterion, InterpolativeDecomposition):
        assert pts is not None  # the id criterion needs points
        model, id_info = _id_prune(model, pts, layers, keep, eps)
    else:
        model, _ = prune_model(model, criterion, layers, keep, eps, pts, generator)
    psnr_pruned = _psnr(model, signal)
    if cfg.finetune:
        from inrkit.train import FitConfig, fit

        assert signal is not None  # finetune without signal_path was rejected above
        fit_cfg = FitConfig(steps=cfg.finetune, lr=cfg.lr, schedule="constant", seed=seed, progress=progress,
                            device=device, precision="fp32")
        model = cast(MLP, fit(model, signal, fit_cfg).model)  # no callbacks: fit returns the MLP it trained
    psnr_after = _psnr(model, signal) if cfg.finetune else psnr_pruned
    prune_info = {"method": method, "layers": list(layers) if layers is not None else None, "keep": keep,
                  "eps": eps, "finetune": cfg.finetune, "seed": seed}
    extra = dict(header.get("extra") or {})
    extra["prune"] = extra.get("prune", []) + [prune_info]
    save_model(model.cpu(), output, signal=header.get("signal") or None, extra=extra)
    bytes_before, size = Path(model_path).stat().st_size, size_report(Path(output).stat().st_size, header.get("signal"))
    warn_if_larger(size, str(output))
    saved = bytes_before - size["bytes"]
    if model.encoding is not None:
        warn(f"pruning removes neurons of the MLP after the grid encoding only: it saved {saved} bytes, "
             f"{100 * saved / bytes_before:.1f}% of the file (the grid tables hold the rest); for a smaller file "
             "fit a smaller grid (--table-size, --levels) or compress it")
    return {
        "output": str(output), **prune_info,
        "params_before": before["params"], "params_after": model.num_params(),
        "widths_before": before["widths"], "widths_after": model.widths,
        "flops_before": before["flops"], "flops_after": model.flops_per_point(),
        "psnr_before": before["psnr"], "psnr_pruned": psnr_pruned, "psnr_after": psnr_after,
        "bytes_before": bytes_before, "bytes_after": size["bytes"], "bytes_saved": bytes_before - size["bytes"],
        **size, **id_info,
    }
