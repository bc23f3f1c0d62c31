"""File-level workflows behind the core CLI commands (fit, eval, info, render, synth)."""
from __future__ import annotations

import inspect
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import numpy as np
import torch

from inrkit.choose import Choice, choose
from inrkit.errors import InvalidInputError
from inrkit.limits import MAX_OMEGA, MIN_OMEGA, check_header_render, check_range
from inrkit.metrics import size_report, warn_if_larger
from inrkit.models import ARCHITECTURES, build_model, load_model, save_model
from inrkit.models.io import WEIGHT_DTYPES
from inrkit.models.mlp import ACTIVATIONS, MLP
from inrkit.signals import AnalyticSignal, Signal, SignalOptions, check_metadata, load_signal, render_model
from inrkit.signals.match import load_matching_signal
from inrkit.signals.planes import quicklook_points, render_slice
from inrkit.signals.render import header_render_points, save_field_png, save_npy
from inrkit.train import FitConfig, FitResult, fit
from inrkit.utils import to_json

AUTO = "auto"
ARCH_CHOICES = (AUTO, *ARCHITECTURES.names())
WEIGHT_DTYPE_CHOICES = (AUTO, *WEIGHT_DTYPES)


@dataclass
class ModelSpec:
    """A new network to fit.

    Args:
        arch: architecture: auto (chosen for the signal and sized from its raw bytes: docs/choosing.md;
            with --hidden, a SIREN) or a name registered in inrkit.models.ARCHITECTURES.
        hidden: hidden widths: 256x3 or 256,128,64 (default: auto's choice; 256x3; 64x2 for grid).
        omega0: SIREN/FINER frequency omega_0 of the first and hidden layers.
        levels: grid: resolution levels (default per dimension: docs/grid.md).
        features: grid: features per level.
        table_size: grid: entries of a hashed level (coarse levels that fit are dense).
        finest: grid: cells per axis of the finest level (default: the signal's largest side).
        activation: grid: hidden activation of the MLP after the grid (default relu).
        base: grid: cells per axis of the coarsest level (default: min(16, finest // 8)).
        weight_dtype: how the file stores the weights: auto (float16 for an auto model, else float32),
            float32 or float16 (half the bytes).
    """

    arch: str = AUTO
    hidden: tuple[int, ...] | None = None
    omega0: float = 30.0
    levels: int | None = None
    features: int | None = None
    table_size: int | None = None
    finest: int | None = None
    activation: str | None = None
    base: int | None = None
    weight_dtype: str = AUTO

    def __post_init__(self) -> None:
        if self.arch != AUTO and self.arch not in ARCHITECTURES:
            raise InvalidInputError(f"unknown architecture {self.arch!r}; choose from {', '.join(ARCH_CHOICES)}")
        if self.weight_dtype not in WEIGHT_DTYPE_CHOICES:
            raise InvalidInputError(f"unknown weight dtype {self.weight_dtype!r}; choose from "
                                    f"{', '.join(WEIGHT_DTYPE_CHOICES)}")
        check_range("omega0", self.omega0, MIN_OMEGA, MAX_OMEGA, optional=False)
        if self.hidden is not None:
            self.hidden = tuple(int(h) for h in self.hidden)
            if not self.hidden or min(self.hidden) < 1:
                raise InvalidInputError(f"hidden widths must be positive, got {list(self.hidden)}")
        given = {k for k in GRID_FIELDS if getattr(self, k) is not None}
        unused = given - (set(_builder_params(self.arch)) if self.arch != AUTO else set())
        if unused:
            raise InvalidInputError(f"{', '.join(sorted(unused))} apply to arch grid only, not {self.arch!r}")
        for name in ("levels", "features", "table_size", "finest", "base"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise InvalidInputError(f"grid {name} must be a positive integer, got {value!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise InvalidInputError(f"unknown activation {self.activation!r}; choose from {list(ACTIVATIONS)}")

    @property
    def widths(self) -> tuple[int, ...]:
        """The hidden widths, the architecture's default when not given."""
        if self.hidden is not None:
            return self.hidden
        param = _builder_params(self.arch).get("hidden") if self.arch != AUTO else None
        default: Any = param.default if param is not None else None
        return tuple(int(w) for w in default) if isinstance(default, (tuple, list)) else (256, 256, 256)

    def build(self, in_dim: int, out_dim: int, generator: torch.Generator | None = None,
              resolution: int | None = None) -> MLP:
        """The untrained model for ``in_dim`` coordinates and ``out_dim`` values.

        ``resolution`` (the signal's largest side) is a grid's finest resolution when ``finest`` is not given.
        """
        if self.arch == AUTO:
            raise InvalidInputError("arch auto is chosen for a signal: use resolve_spec(spec, signal) first")
        offered: dict[str, Any] = {"omega0": self.omega0, "omega_hidden": self.omega0,
                                   **{k: getattr(self, k) for k in GRID_FIELDS}}
        if self.finest is None and resolution:
            offered["finest"] = max(int(resolution), 2)
        params = _builder_params(self.arch)  # each architecture takes the options its builder names
        kwargs = {k: v for k, v in offered.items() if k in params and v is not None}
        return build_model(self.arch, in_dim, out_dim, self.widths, generator=generator, **kwargs)


GRID_FIELDS = ("levels", "features", "table_size", "finest", "activation", "base")
"""ModelSpec fields of a grid encoding (passed to any builder that names them)."""


def _builder_params(arch: str) -> Mapping[str, inspect.Parameter]:
    """The parameters of architecture ``arch``'s builder (:data:`inrkit.models.ARCHITECTURES`)."""
    return inspect.signature(ARCHITECTURES.get(arch)).parameters


def _require_mlp(model: torch.nn.Module, path: str | os.PathLike, what: str) -> MLP:
    """``model`` as an :class:`MLP`; other types (a NeRF) are refused with :class:`InvalidInputError`."""
    if not isinstance(model, MLP):
        raise InvalidInputError(f"{path}: a {type(model).__name__} cannot be {what} here "
                                "(NeRF: use the nerf-* commands)")
    return model


def check_compatible(model: MLP, signal: Signal) -> None:
    """Raise InvalidInputError unless ``model`` maps ``signal.dim`` coordinates to ``signal.out_dim`` values."""
    if model.coord_dim != signal.dim or model.out_dim != signal.out_dim:
        raise InvalidInputError(
            f"model maps {model.coord_dim}D -> {model.out_dim} values but the signal is "
            f"{signal.dim}D -> {signal.out_dim} values"
        )


def resolve_spec(spec: ModelSpec, signal: Signal) -> tuple[ModelSpec, Choice | None]:
    """``spec`` with ``arch auto`` replaced by the model :func:`inrkit.choose.choose` picks for ``signal``, and
    that choice (``None`` when ``spec`` names an architecture). Widths given without an architecture
    (``hidden``) make a SIREN of those widths (no choice)."""
    if spec.arch != AUTO:
        return spec, None
    if spec.hidden is not None:  # widths without an architecture: a SIREN, as inrkit has always read them
        return replace(spec, arch="siren"), None
    choice = choose(signal)
    resolved = replace(spec, arch=choice.arch, **choice.fields)
    return resolved, choice


def weight_dtype(spec: ModelSpec, choice: Choice | None) -> str:
    """How the file stores the weights: the spec's, or for ``auto`` the choice's (float32 without one)."""
    if spec.weight_dtype != AUTO:
        return spec.weight_dtype
    return choice.weight_dtype if choice is not None else "float32"


def fit_signal(signal: Signal, spec: ModelSpec | None = None, config: FitConfig | None = None) -> FitResult:
    """Fit a new ``spec`` model (seeded with ``config.seed``; ``arch auto`` resolved by :func:`resolve_spec`)
    to ``signal``."""
    spec, config = spec or ModelSpec(), config or FitConfig()
    spec, choice = resolve_spec(spec, signal)
    config = choice.fit_config(config) if choice is not None else config
    shape = getattr(signal, "shape", None)
    model = spec.build(signal.dim, signal.out_dim, torch.Generator().manual_seed(config.seed),
                       resolution=max(shape) if shape else None)
    return fit(model, signal, config)


def run_config(spec: ModelSpec, config: FitConfig, options: SignalOptions | None = None) -> dict[str, Any]:
    """The settings of a fit as stored in the model header (``extra["config"]``)."""
    fit_cfg = {k: v for k, v in asdict(config).items() if k not in ("progress", "device")}
    out = {"model": asdict(spec), "fit": fit_cfg}
    if options is not None:
        out["signal"] = asdict(options)
    return json.loads(to_json(out, indent=None))


def fit_file(
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    spec: ModelSpec | None = None,
    config: FitConfig | None = None,
    options: SignalOptions | None = None,
) -> tuple[FitResult, dict[str, Any]]:
    """Fit a new model to the signal in ``input_path`` and save it to ``output``.

    The model header records the settings (``extra["config"]``: model, fit and signal options).
    Returns the fit result and a summary (``psnr``, ``steps``, ``seconds``, ``params``, ...).
    """
    spec, config, options = spec or ModelSpec(), config or FitConfig(), options or SignalOptions()
    signal = load_signal(input_path, seed=config.seed, **options.kwargs())
    resolved, choice = resolve_spec(spec, signal)
    config = choice.fit_config(config) if choice is not None else config
    dtype = weight_dtype(spec, choice)
    result = fit_signal(signal, resolved, config)
    model = cast(MLP, result.model).cpu()
    if dtype != "float32":  # report the metrics of the weights as stored
        round_weights(model, dtype)
        result.metrics = signal.evaluate(model) if config.evaluate else result.metrics
    extra: dict[str, Any] = {"arch": resolved.arch, "seed": config.seed, "steps": result.steps,
                             "source": str(input_path), "config": run_config(resolved, config, options)}
    if choice is not None:
        extra["auto"] = choice.summary()
    meta = signal.metadata()
    save_model(model, output, signal=meta, extra=extra, weight_dtype=dtype)
    summary = {"output": str(output), "arch": resolved.arch, **result.summary(),
               **size_report(Path(output).stat().st_size, meta), "weight_dtype": dtype,
               "flops_per_point": model.flops_per_point()}
    if choice is not None:
        summary["auto"] = choice.summary()
    warn_if_larger(summary, str(output))
    return result, summary


def round_weights(model: torch.nn.Module, dtype: str) -> None:
    """Round every parameter to ``dtype`` (float16) in place, as the file will store it."""
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.to(WEIGHT_DTYPES[dtype]).float())


def evaluate_file(model_path: str | os.PathLike, input_path: str | os.PathLike,
                  **signal_options: Any) -> dict[str, Any]:
    """Metrics of a saved model against the signal in ``input_path`` (checked against the header: kind,
    shape, crop; see :func:`inrkit.signals.match.load_matching_signal`)."""
    model, header = load_model(model_path)
    mlp = _require_mlp(model, model_path, "evaluated")
    signal = load_matching_signal(input_path, header, "input", **signal_options)
    check_compatible(mlp, signal)
    return {"model": str(model_path), "signal": str(input_path), **signal.evaluate(model)}


def model_info(model_path: str | os.PathLike) -> dict[str, Any]:
    """Architecture, widths, parameter count, FLOPs per point and file size of a saved model (any type)."""
    model, header = load_model(model_path)
    info: dict[str, Any] = {"path": str(model_path), "bytes": Path(model_path).stat().st_size}
    if isinstance(model, MLP):
        info.update(widths=model.widths, activations=model.activations, omegas=model.omegas,
                    fourier_features=0 if model.fourier is None else int(model.fourier.shape[0]))
        if model.encoding is not None:
            grid = model.encoding.summary()
            grid["param_share"] = round(grid["params"] / max(model.num_params(), 1), 4)
            info["encoding"] = grid
    else:
        groups: list[Any] = getattr(model, "prunable_groups", list)()
        info.update(type=header.get("type", type(model).__name__), widths={g.name: g.width for g in groups})
    params = getattr(model, "num_params", lambda: sum(p.numel() for p in model.parameters()))()
    signal = header.get("signal", {})
    info.update(size_report(info["bytes"], signal if isinstance(signal, dict) else None))
    info.update(params=params, flops_per_point=getattr(model, "flops_per_point", lambda: None)(),
                signal=header.get("signal", {}), extra=header.get("extra", {}))
    if header.get("notes"):  # e.g. a version-1 file whose checksum does not cover the header
        info["notes"] = header["notes"]
    return info


def render_file(model_path: str | os.PathLike, output: str | os.PathLike,
                size: Sequence[int] | None = None, plane: str | None = None) -> dict[str, Any]:
    """Render a saved model (image, field, volume or SDF mesh) to ``output``.

    Args:
        size: output resolution, e.g. 512,512 or 128,128,128 (none: the signal's own).
        plane: write one plane of a volume model as a greyscale PNG instead, AXIS:INDEX of the
            render grid (e.g. z:32; a volume's .png without it shows the three mid-planes).
    """
    model, header = load_model(model_path)
    mlp = _require_mlp(model, model_path, "rendered")
    if not size:  # the header's shape: bounded by what the model file's size justifies
        meta = header.get("signal") or {}
        points = quicklook_points(mlp, meta, output, plane) if isinstance(meta, dict) else None  # planes only
        check_header_render(points if points is not None else header_render_points(mlp, meta),
                            Path(model_path).stat().st_size, str(model_path), mlp.flops_per_point())
    if plane is not None:
        meta = check_metadata(header.get("signal", {}), mlp.out_dim)
        path = render_slice(mlp, meta, Path(output), size, plane)
        return {"output": str(path), "bytes": Path(path).stat().st_size}
    path = render_model(mlp, header.get("signal", {}), output, size)
    return {"output": str(path), "bytes": Path(path).stat().st_size}


def synth_sin_radial(output: str | os.PathLike, size: int = 256, alpha: float = 0.1) -> dict[str, Any]:
    """Sample ``sin(1/(alpha + r))`` on a ``size x size`` grid over [-1, 1]^2; ``.npy`` or ``.png``.

    Args:
        output: .npy (values) or .png (colour map).
        size: samples per axis.
        alpha: the offset in sin(1/(alpha + r)).
    """
    if size < 2 or alpha <= 0:
        raise InvalidInputError("size must be >= 2 and alpha > 0")
    field = AnalyticSignal("sin-radial", params={"alpha": alpha}).sample_grid(size).astype(np.float32)
    path = Path(output)
    if path.suffix.lower() == ".png":
        save_field_png(path, field)
    elif path.suffix.lower() == ".npy":
        save_npy(path, field)
    else:
        raise InvalidInputError(f"sin-radial writes .npy or .png, not {path.suffix!r}")
    return {"output": str(path), "shape": list(field.shape), "alpha": alpha,
            "min": float(field.min()), "max": float(field.max())}
