"""The editable MLP that every inrkit method shares.

A model is a list of dense layers ``(W_i, b_i, activation_i, omega_i)``. Widths may
change per layer; pruning and densification replace a layer's parameters with
smaller or larger ones (see :mod:`inrkit.models.surgery`). ``ARCHITECTURES`` registers the
constructors that :func:`build_model` reads (siren, finer, ffn, relu, tanh, grid). An optional
encoding stage (:class:`~inrkit.models.grid.GridEncoding`, a multi-resolution feature grid) may sit
in front of the dense layers, like the Fourier features; the layers after it stay editable.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from inrkit.errors import InvalidInputError
from inrkit.limits import (
    MAX_HIDDEN_LAYERS,
    MAX_MODEL_ELEMENTS,
    MAX_MODEL_LAYERS,
    MAX_OMEGA,
    MAX_TENSOR_ELEMENTS,
    MIN_OMEGA,
    check_range,
)
from inrkit.models.grid import GridConfig, GridEncoding, grid_batch_size, grid_param_groups
from inrkit.models.surgery import PrunableGroup
from inrkit.registry import Registry

ACTIVATIONS = ("sine", "finer", "relu", "tanh", "sigmoid", "identity")
PERIODIC = ("sine", "finer")


def dense(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``h W^T + b`` for one network (``W [out, in]``) or a stack of networks (``W [B, out, in]``,
    ``b [B, out]``, ``h [B, N, in]``; see :class:`inrkit.models.stacked.StackedModel`)."""
    if weight.dim() == 2:
        return torch.addmm(bias, h, weight.t())
    return torch.baddbmm(bias.unsqueeze(-2), h, weight.transpose(-1, -2))


def _sine_layer(h: Tensor, weight: Tensor, bias: Tensor, omega: float) -> Tensor:
    if weight.dim() == 2:  # one fused GEMM computes omega * (h W^T + b); no separate scaling pass
        return torch.sin(torch.addmm(bias, h, weight.t(), beta=omega, alpha=omega))
    # a stack: omega scales the small weights, not the large activations (baddbmm's alpha would
    # multiply every [B, N, H] gradient by omega: a third of the step time at 32 x 4096 x 32)
    return torch.sin(dense(h, omega * weight, omega * bias))


def _finer_layer(h: Tensor, weight: Tensor, bias: Tensor, omega: float) -> Tensor:
    z = dense(h, weight, bias)
    return torch.sin(omega * (z.abs() + 1.0) * z)


def apply_activation(z: Tensor, activation: str) -> Tensor:
    """A non-periodic activation (``relu``, ``tanh``, ``sigmoid``; anything else is identity)."""
    if activation == "relu":
        return torch.relu(z)
    if activation == "tanh":
        return torch.tanh(z)
    if activation == "sigmoid":
        return torch.sigmoid(z)
    return z


def _plain_layer(h: Tensor, weight: Tensor, bias: Tensor, activation: str) -> Tensor:
    return apply_activation(dense(h, weight, bias), activation)


def layer_output(h: Tensor, weight: Tensor, bias: Tensor, activation: str, omega: float) -> Tensor:
    """One dense layer of the MLP: ``act(omega (W h + b))`` (sine), FINER, or a plain activation.

    Works on one network or a stack of them (3-D ``weight``, see :func:`dense`).
    """
    if activation == "sine":
        return _sine_layer(h, weight, bias, omega)
    if activation == "finer":
        return _finer_layer(h, weight, bias, omega)
    return _plain_layer(h, weight, bias, activation)


def fourier_features(x: Tensor, B: Tensor) -> Tensor:
    """``[sin(2 pi x B^T), cos(2 pi x B^T)]`` for one ``B [m, d]`` or a stack ``B [S, m, d]``."""
    proj = (2.0 * math.pi) * (x @ B.transpose(-1, -2))
    return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class MLP(nn.Module):
    """A coordinate MLP with per-layer widths, activations and frequencies.

    Args:
        widths: ``[n_in, h_1, ..., n_out]``; ``n_in`` is the input width of the first
            dense layer (coordinate dimension, or ``2*m`` with ``m`` Fourier features).
        activations: one of :data:`ACTIVATIONS` per layer (``len(widths) - 1`` entries).
        omegas: frequency factor per layer for ``sine``/``finer`` (1.0 elsewhere).
        fourier: optional Fourier-feature matrix ``B`` of shape ``[m, coord_dim]``.
        encoding: optional multi-resolution grid in front of the dense layers (``widths[0]`` must be
            its ``levels * features``); not together with ``fourier``.
    """

    fourier: Tensor | None  # a buffer (``register_buffer``), typed here for the type checker

    def __init__(
        self,
        widths: Sequence[int],
        activations: Sequence[str],
        omegas: Sequence[float] | None = None,
        fourier: Tensor | None = None,
        encoding: GridEncoding | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        n_layers = len(widths) - 1
        if n_layers < 1 or any(w < 1 for w in widths):
            raise InvalidInputError(f"widths must hold at least two positive sizes, got {widths}")
        if len(activations) != n_layers:
            raise InvalidInputError(f"need {n_layers} activations for widths {widths}, got {len(activations)}")
        unknown = sorted(set(activations) - set(ACTIVATIONS))
        if unknown:
            raise InvalidInputError(f"unknown activation(s) {unknown}; choose from {list(ACTIVATIONS)}")
        omegas = [1.0] * n_layers if omegas is None else [float(o) for o in omegas]
        if len(omegas) != n_layers:
            raise InvalidInputError(f"need {n_layers} omegas, got {len(omegas)}")
        sizes = [widths[i + 1] * (widths[i] + 1) for i in range(n_layers)]
        if n_layers > MAX_MODEL_LAYERS or max(sizes) > MAX_TENSOR_ELEMENTS or sum(sizes) > MAX_MODEL_ELEMENTS:
            raise InvalidInputError(f"an MLP of {n_layers} layers and {sum(sizes)} weights is too large "
                                    f"(at most {MAX_MODEL_LAYERS} layers, {MAX_TENSOR_ELEMENTS} per layer, "
                                    f"{MAX_MODEL_ELEMENTS} in all)")
        self.activations = list(activations)
        self.omegas = [o if a in PERIODIC else 1.0 for o, a in zip(omegas, self.activations)]
        # nn.Linear's default initialisation, U(-1/sqrt(n), 1/sqrt(n)); constructors refine it.
        bounds = [1.0 / math.sqrt(widths[i]) for i in range(n_layers)]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(widths[i + 1], widths[i]).uniform_(-bounds[i], bounds[i])) for i in range(n_layers)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(widths[i + 1]).uniform_(-bounds[i], bounds[i])) for i in range(n_layers)
        )
        self.register_buffer("fourier", None if fourier is None else fourier.detach().clone().float())
        if fourier is not None and 2 * fourier.shape[0] != widths[0]:
            raise InvalidInputError(f"{fourier.shape[0]} Fourier features need widths[0] = {2 * fourier.shape[0]}")
        if encoding is not None and (fourier is not None or encoding.out_dim != widths[0]):
            raise InvalidInputError(f"a grid encoding of {encoding.out_dim} features needs widths[0] = "
                                    f"{encoding.out_dim} and no Fourier features")
        self.encoding = encoding

    # ----------------------------------------------------------------- shape
    @property
    def num_layers(self) -> int:
        return len(self.weights)

    @property
    def widths(self) -> list[int]:
        return [int(self.weights[0].shape[1])] + [int(w.shape[0]) for w in self.weights]

    @property
    def hidden_widths(self) -> list[int]:
        return self.widths[1:-1]

    @property
    def coord_dim(self) -> int:
        if self.encoding is not None:
            return self.encoding.config.dim
        return int(self.fourier.shape[1]) if self.fourier is not None else self.widths[0]

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    def num_params(self) -> int:
        """Number of trainable scalars (weights, biases and grid tables)."""
        return sum(int(p.numel()) for p in self.parameters())

    def dense_parameters(self) -> list[nn.Parameter]:
        """The dense layers' weights and biases (everything but the encoding's tables)."""
        return [*self.weights, *self.biases]

    # -------------------------------------------------------------- training
    def param_groups(self, lr: float, encoding_lr: float | None = None) -> list[dict[str, Any]]:
        """Optimizer groups: one at ``lr``; with a grid encoding, the layers at ``lr`` and the tables at
        ``encoding_lr`` (:func:`~inrkit.models.grid.grid_param_groups`)."""
        if self.encoding is None:
            return [{"params": list(self.parameters()), "base_lr": lr}]
        return grid_param_groups(self, self.encoding, lr, encoding_lr)

    def default_batch_size(self, n_points: int) -> int | None:
        """``None`` (the fit's rule: full batches up to its ``max_full_batch``); with a grid encoding, random
        batches of :data:`~inrkit.models.grid.GRID_BATCH` for larger sets."""
        return None if self.encoding is None else grid_batch_size(n_points)

    def flops_per_point(self) -> int:
        """FLOPs to evaluate one point: 2 per multiply-add, 1 per activation or encoding output."""
        flops = 0
        if self.fourier is not None:
            flops += 2 * self.fourier.numel() + 2 * self.fourier.shape[0]
        if self.encoding is not None:
            flops += self.encoding.flops_per_point()
        for weight, activation in zip(self.weights, self.activations):
            out, inp = weight.shape
            flops += 2 * out * inp + out  # GEMM and bias
            flops += 0 if activation == "identity" else (3 * out if activation == "finer" else out)
        return int(flops)

    def validate(self) -> None:
        """Check that consecutive layers fit together; raise InvalidInputError otherwise."""
        for i in range(1, self.num_layers):
            if self.weights[i].shape[1] != self.weights[i - 1].shape[0]:
                raise InvalidInputError(
                    f"layer {i} takes {self.weights[i].shape[1]} inputs but layer {i - 1} "
                    f"gives {self.weights[i - 1].shape[0]}"
                )
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if b.shape != (w.shape[0],):
                raise InvalidInputError(f"bias {i} has shape {tuple(b.shape)}, expected ({w.shape[0]},)")

    # --------------------------------------------------------------- compute
    def encode(self, x: Tensor) -> Tensor:
        """Input features of the first dense layer (identity, Fourier features or the grid's features)."""
        if self.encoding is not None:
            return self.encoding(x)
        return x if self.fourier is None else fourier_features(x, self.fourier)

    def layer_forward(self, i: int, h: Tensor) -> Tensor:
        """Output of layer ``i`` for its input ``h`` (float32; see :func:`inrkit.models.fast.with_precision`)."""
        return layer_output(h, self.weights[i], self.biases[i], self.activations[i], self.omegas[i])

    def forward(self, x: Tensor) -> Tensor:
        h = self.encode(x)
        for i in range(self.num_layers):
            h = self.layer_forward(i, h)
        return h

    def forward_with_hidden(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Return the output and the post-activation output of every hidden layer."""
        h = self.encode(x)
        hidden = []
        for i in range(self.num_layers):
            h = self.layer_forward(i, h)
            if i < self.num_layers - 1:
                hidden.append(h)
        return h, hidden

    # ------------------------------------------------------------------ edit
    def prunable_groups(self) -> list[PrunableGroup]:
        """One group per hidden layer ``i`` (named ``"i"``): rows of ``W_i``/``b_i``, columns of ``W_{i+1}``."""
        return [PrunableGroup(str(i), (f"weights.{i}", f"biases.{i}"), [(f"weights.{i + 1}", 0)],
                              int(self.weights[i].shape[0])) for i in range(self.num_layers - 1)]

    def set_layer(self, i: int, weight: Tensor, bias: Tensor) -> None:
        """Replace layer ``i``'s parameters by new Parameter objects (shapes may change)."""
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise InvalidInputError(f"layer {i}: weight {tuple(weight.shape)} and bias {tuple(bias.shape)} do not fit")
        self.weights[i] = nn.Parameter(weight.detach().clone())
        self.biases[i] = nn.Parameter(bias.detach().clone())

    def copy(self) -> "MLP":
        """A deep copy with new parameter objects."""
        return copy.deepcopy(self)

    def extra_repr(self) -> str:
        acts = ",".join(self.activations)
        return f"widths={self.widths}, activations=[{acts}], omegas={self.omegas}"


# -------------------------------------------------------------- constructors
def _uniform_(t: Tensor, bound: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        t.uniform_(-bound, bound, generator=generator)


def siren(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256, 256),
    omega0: float = 30.0,
    omega_hidden: float = 30.0,
    generator: torch.Generator | None = None,
) -> MLP:
    """SIREN (Sitzmann et al. 2020) with its initialisation.

    First layer ``W ~ U(-1/n, 1/n)``; later layers ``W ~ U(-sqrt(6/n)/omega, sqrt(6/n)/omega)``;
    biases as PyTorch's ``nn.Linear`` (``U(-1/sqrt(n), 1/sqrt(n))``); the last layer is linear.
    """
    for name, omega in (("omega0", omega0), ("omega_hidden", omega_hidden)):
        check_range(name, omega, MIN_OMEGA, MAX_OMEGA, optional=False)
    widths = [in_dim, *hidden, out_dim]
    n = len(widths) - 1
    acts = ["sine"] * (n - 1) + ["identity"]
    model = MLP(widths, acts, [omega0] + [omega_hidden] * (n - 1))
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        fan_in = w.shape[1]
        bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / omega_hidden
        _uniform_(w, bound, generator)
        _uniform_(b, 1.0 / math.sqrt(fan_in), generator)
    return model


def finer(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256, 256),
    omega0: float = 30.0,
    omega_hidden: float = 30.0,
    first_bias_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> MLP:
    """FINER (Liu et al. 2024): ``sin(omega (|z|+1) z)`` with SIREN weights and a wide first bias.

    The first layer's bias is drawn from ``U(-k, k)`` with ``k = first_bias_scale`` (FINER's
    key initialisation, which selects a wider range of frequencies); others as SIREN.
    """
    model = siren(in_dim, out_dim, hidden, omega0, omega_hidden, generator)
    model.activations = ["finer"] * (model.num_layers - 1) + ["identity"]
    _uniform_(model.biases[0], first_bias_scale, generator)
    return model


def ffn(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256, 256),
    num_frequencies: int = 256,
    sigma: float = 10.0,
    generator: torch.Generator | None = None,
) -> MLP:
    """Fourier-feature ReLU MLP (Tancik et al. 2020): Gaussian ``B ~ N(0, sigma^2)``."""
    fourier = torch.randn(num_frequencies, in_dim, generator=generator) * sigma
    widths = [2 * num_frequencies, *hidden, out_dim]
    n = len(widths) - 1
    model = MLP(widths, ["relu"] * (n - 1) + ["identity"], fourier=fourier)
    for w, b in zip(model.weights, model.biases):
        bound = 1.0 / math.sqrt(w.shape[1])
        _uniform_(w, bound, generator)  # nn.Linear's default (kaiming_uniform with a=sqrt(5))
        _uniform_(b, bound, generator)
    return model


def plain(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256, 256),
    activation: str = "relu",
    generator: torch.Generator | None = None,
) -> MLP:
    """A plain MLP (``relu``/``tanh``/``sigmoid`` hidden layers, linear output), ``nn.Linear``'s initialisation.

    Args:
        in_dim: coordinate dimension.
        out_dim: output channels.
        hidden: hidden widths.
        activation: the hidden layers' activation.
        generator: random source of the initialisation.
    """
    widths = [in_dim, *hidden, out_dim]
    model = MLP(widths, [activation] * (len(widths) - 2) + ["identity"])
    for w, b in zip(model.weights, model.biases):
        bound = 1.0 / math.sqrt(w.shape[1])
        _uniform_(w, bound, generator)
        _uniform_(b, bound, generator)
    return model


def relu_mlp(in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256, 256),
             generator: torch.Generator | None = None) -> MLP:
    """A plain ReLU MLP on raw coordinates (see :func:`plain`)."""
    return plain(in_dim, out_dim, hidden, "relu", generator)


def tanh_mlp(in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256, 256),
             generator: torch.Generator | None = None) -> MLP:
    """A plain tanh MLP on raw coordinates (see :func:`plain`)."""
    return plain(in_dim, out_dim, hidden, "tanh", generator)


GRID_DEFAULTS: dict[int, dict[str, int]] = {
    1: {"levels": 8, "features": 2, "base": 16, "finest": 4096, "table_size": 1 << 14},
    2: {"levels": 16, "features": 2, "base": 16, "finest": 768, "table_size": 1 << 16},
    3: {"levels": 8, "features": 2, "base": 4, "finest": 64, "table_size": 1 << 17},
    4: {"levels": 16, "features": 2, "base": 4, "finest": 64, "table_size": 1 << 18},
}
"""Grid shape per coordinate dimension when a field is not given (measured; docs/grid.md)."""


def grid(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (64, 64),
    levels: int | None = None,
    features: int | None = None,
    base: int | None = None,
    finest: int | None = None,
    table_size: int | None = None,
    activation: str = "relu",
    generator: torch.Generator | None = None,
) -> MLP:
    """A multi-resolution grid encoding followed by a small MLP (instant-NGP style).

    Args:
        in_dim: coordinate dimension (1 to 4).
        out_dim: output channels.
        hidden: hidden widths of the MLP after the grid.
        levels: resolution levels (``None``: :data:`GRID_DEFAULTS` for ``in_dim``).
        features: features per level.
        base: cells per axis of the coarsest level (``None``: the default, at most ``finest // 8``).
        finest: cells per axis of the finest level.
        table_size: entries of a hashed level.
        activation: the hidden layers' activation (``relu``; any of :data:`ACTIVATIONS`).
        generator: random source of the tables (``U(-1e-4, 1e-4)``) and of the MLP (``nn.Linear``'s init).
    """
    if not 1 <= in_dim <= 4:
        raise InvalidInputError(f"grid encodings take 1 to 4 coordinates, not {in_dim}")
    given = {"levels": levels, "features": features, "base": base, "finest": finest, "table_size": table_size}
    shape = {**GRID_DEFAULTS[in_dim], **{k: v for k, v in given.items() if v is not None}}
    if base is None:  # at most finest / 8, so that the levels span a range of scales
        shape["base"] = max(1, min(shape["base"], shape["finest"] // 8))
    encoding = GridEncoding(GridConfig(dim=in_dim, **shape), generator)
    widths = [encoding.out_dim, *hidden, out_dim]
    model = MLP(widths, [activation] * (len(widths) - 2) + ["identity"], encoding=encoding)
    for w, b in zip(model.weights, model.biases):
        bound = 1.0 / math.sqrt(w.shape[1])
        _uniform_(w, bound, generator)
        _uniform_(b, bound, generator)
    return model


ARCHITECTURES: Registry[Callable[..., MLP]] = Registry("architecture")
"""Builders ``(in_dim, out_dim, hidden, **kw) -> MLP`` by name; a new one registers here once."""
ARCHITECTURES.register("siren", siren)
ARCHITECTURES.register("finer", finer)
ARCHITECTURES.register("ffn", ffn)
ARCHITECTURES.register("relu", relu_mlp)
ARCHITECTURES.register("tanh", tanh_mlp)
ARCHITECTURES.register("grid", grid)


def build_model(arch: str, in_dim: int, out_dim: int, hidden: Sequence[int], **kwargs: Any) -> MLP:
    """Build the registered architecture ``arch`` (see :data:`ARCHITECTURES`).

    Args:
        arch: a name in :data:`ARCHITECTURES` (siren, finer, ffn, relu, tanh, grid).
        in_dim: coordinate dimension.
        out_dim: output channels.
        hidden: hidden widths.
        **kwargs: the builder's options (e.g. ``omega0``, ``generator``).
    """
    return ARCHITECTURES.get(arch)(in_dim, out_dim, list(hidden), **kwargs)


def parse_hidden(spec: str) -> list[int]:
    """Parse ``"256x3"`` or ``"256,128,64"`` into hidden widths."""
    try:
        if "x" in spec.lower():
            width, depth = (int(v) for v in spec.lower().split("x"))
            widths = [width] * min(depth, MAX_HIDDEN_LAYERS + 1)  # never a list longer than the limit
        else:
            widths = [int(s) for s in spec.split(",") if s.strip()]
            depth = len(widths)
    except ValueError as exc:
        raise InvalidInputError(f"cannot parse hidden widths {spec[:80]!r}; use e.g. 256x3 or 256,128,64") from exc
    if depth > MAX_HIDDEN_LAYERS:
        raise InvalidInputError(f"hidden widths {spec[:80]!r}: {depth} layers (at most {MAX_HIDDEN_LAYERS})")
    if not widths or any(w < 1 for w in widths):
        raise InvalidInputError(f"hidden widths must be positive, got {spec[:80]!r}")
    return widths
