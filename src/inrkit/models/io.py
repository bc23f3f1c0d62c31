"""Model files: safetensors weights with a JSON header; plain ``.npz`` weight lists.

One format for every registered model type (:data:`MODEL_TYPES`): the plain :class:`MLP`
(``header["type"]`` absent or ``"mlp"``) and the NeRF MLP (``"nerf"``). No pickle is ever used.
Loading validates the header and every tensor shape, and ONE SHA-256 digest of the tensor
bytes (:func:`digest`) detects altered payloads. Old ``inrkit-nerf`` v1 files still load.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from inrkit.errors import InrkitError, InvalidFileError, InvalidInputError
from inrkit.models.mlp import ACTIVATIONS, MLP
from inrkit.models.nerf_mlp import NeRFConfig, NeRFMLP, nerf_shapes
from inrkit.registry import Registry
from inrkit.utils import atomic_write, resolve_device

FORMAT = "inrkit-model"
VERSION = 1
LEGACY_NERF_FORMAT = "inrkit-nerf"
MAX_LAYERS = 1024
MAX_WIDTH = 1 << 20
_NPZ_ACTIVATION_ALIASES = {"sin": "sine", "siren": "sine", "linear": "identity", "none": "identity"}


def digest(tensors: dict[str, torch.Tensor], names: list[str]) -> str:
    """SHA-256 over ``name`` and float32 bytes of each tensor, in the order of ``names``."""
    sha = hashlib.sha256()
    for name in names:
        sha.update(name.encode())
        sha.update(tensors[name].detach().cpu().contiguous().float().numpy().tobytes())
    return sha.hexdigest()


# ------------------------------------------------------------------ model types
@dataclass(frozen=True)
class ModelType:
    """How one model class maps to the file format.

    Args:
        cls: the model class.
        tensors: ``model -> {file name: tensor}``.
        header: ``model -> architecture fields`` of the header.
        check: validates a header's architecture fields (raises :class:`InvalidFileError`).
        shapes: ``header -> {file name: shape}``, in digest order.
        build: ``(tensors, header) -> model``.
    """

    cls: type
    tensors: Callable[[Any], dict[str, torch.Tensor]]
    header: Callable[[Any], dict[str, Any]]
    check: Callable[[dict], None]
    shapes: Callable[[dict], dict[str, tuple[int, ...]]]
    build: Callable[[dict[str, torch.Tensor], dict], nn.Module]


MODEL_TYPES: Registry[ModelType] = Registry("model type")


def _mlp_tensors(model: MLP) -> dict[str, torch.Tensor]:
    tensors = {}
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        tensors[f"W{i}"] = w.detach().float().cpu().contiguous()
        tensors[f"b{i}"] = b.detach().float().cpu().contiguous()
    if model.fourier is not None:
        tensors["fourier_B"] = model.fourier.detach().float().cpu().contiguous()
    return tensors


def _mlp_header(model: MLP) -> dict[str, Any]:
    return {"widths": model.widths, "activations": model.activations, "omegas": model.omegas,
            "coord_dim": model.coord_dim, "fourier": model.fourier is not None}


def _mlp_check(header: dict) -> None:
    widths, acts, omegas = header.get("widths"), header.get("activations"), header.get("omegas")
    if not (isinstance(widths, list) and 2 <= len(widths) <= MAX_LAYERS + 1):
        raise InvalidFileError("header 'widths' must be a list of 2 or more sizes")
    if not all(isinstance(w, int) and 0 < w <= MAX_WIDTH for w in widths):
        raise InvalidFileError(f"header 'widths' holds invalid sizes: {widths}")
    n = len(widths) - 1
    if not (isinstance(acts, list) and len(acts) == n and all(a in ACTIVATIONS for a in acts)):
        raise InvalidFileError(f"header 'activations' must list {n} of {list(ACTIVATIONS)}")
    if not (isinstance(omegas, list) and len(omegas) == n and all(isinstance(o, (int, float)) for o in omegas)):
        raise InvalidFileError(f"header 'omegas' must list {n} numbers")


def _mlp_shapes(header: dict) -> dict[str, tuple[int, ...]]:
    widths = header["widths"]
    n = len(widths) - 1
    shapes: dict[str, tuple[int, ...]] = {f"W{i}": (widths[i + 1], widths[i]) for i in range(n)}
    shapes.update({f"b{i}": (widths[i + 1],) for i in range(n)})
    if header.get("fourier"):
        coord_dim = header.get("coord_dim")
        if not isinstance(coord_dim, int) or coord_dim < 1 or widths[0] % 2:
            raise InvalidFileError("Fourier model needs a positive 'coord_dim' and an even first width")
        shapes["fourier_B"] = (widths[0] // 2, coord_dim)
    return shapes


def _mlp_build(tensors: dict[str, torch.Tensor], header: dict) -> MLP:
    fourier = tensors.get("fourier_B") if header.get("fourier") else None
    model = MLP(header["widths"], header["activations"], header["omegas"], fourier=fourier)
    with torch.no_grad():
        for i in range(model.num_layers):
            model.weights[i].copy_(tensors[f"W{i}"])
            model.biases[i].copy_(tensors[f"b{i}"])
    return model


def _nerf_config(header: dict) -> NeRFConfig:
    try:
        return NeRFConfig(**header["nerf"]).validate()
    except (KeyError, TypeError, InvalidInputError) as exc:
        raise InvalidFileError(f"invalid NeRF architecture in the header ({exc})") from exc


def _nerf_check(header: dict) -> None:
    _nerf_config(header)


def _nerf_build(tensors: dict[str, torch.Tensor], header: dict) -> NeRFMLP:
    model = NeRFMLP(_nerf_config(header))
    model.load_state_dict(tensors)
    return model


MODEL_TYPES.register("mlp", ModelType(MLP, _mlp_tensors, _mlp_header, _mlp_check, _mlp_shapes, _mlp_build))
MODEL_TYPES.register("nerf", ModelType(
    NeRFMLP, lambda m: {k: v.detach().float().cpu().contiguous() for k, v in m.state_dict().items()},
    lambda m: {"nerf": asdict(m.config)}, _nerf_check, lambda h: nerf_shapes(_nerf_config(h)), _nerf_build))


def _type_name(model: nn.Module) -> str:
    for name, kind in MODEL_TYPES.items():
        if type(model) is kind.cls:
            return name
    raise InvalidInputError(f"cannot save a {type(model).__name__}; registered: {', '.join(MODEL_TYPES.names())}")


# ------------------------------------------------------------------ headers
def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors by file name (MLP: ``W0..Wn``, ``b0..bn``, ``fourier_B``), float32 on the CPU."""
    return MODEL_TYPES.get(_type_name(model)).tensors(model)


def model_header(model: nn.Module, signal: dict | None = None, extra: dict | None = None) -> dict[str, Any]:
    """The JSON header that describes ``model`` (architecture and signal metadata; no checksum)."""
    name = _type_name(model)
    header: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if name != "mlp":  # plain MLP headers stay as they always were
        header["type"] = name
    header.update(MODEL_TYPES.get(name).header(model))
    header.update({"signal": signal or {}, "extra": extra or {}})
    return header


def model_to_bytes(model: nn.Module, signal: dict | None = None, extra: dict | None = None) -> bytes:
    """Serialise ``model`` to safetensors bytes (what :func:`save_model` writes)."""
    tensors = model_tensors(model)
    header = model_header(model, signal, extra)
    header["sha256"] = digest(tensors, list(expected_shapes(header)))
    return safetensors_save(tensors, metadata={"inrkit": json.dumps(header)})


def save_model(model: nn.Module, path: str | os.PathLike, signal: dict | None = None,
               extra: dict | None = None) -> Path:
    """Save ``model`` as one safetensors file, atomically; returns the path."""
    data = model_to_bytes(model, signal, extra)
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


def _from_legacy_nerf(header: dict) -> dict[str, Any]:
    """An ``inrkit-nerf`` v1 header in today's form (same tensors and digest order)."""
    if header.get("version") != 1:
        raise InvalidFileError(f"unsupported NeRF file version {header.get('version')!r}")
    return {"format": FORMAT, "version": VERSION, "type": "nerf", "nerf": header.get("config"),
            "signal": header.get("scene", {}), "extra": header.get("extra", {}), "sha256": header.get("sha256")}


def validate_header(header: Any) -> dict[str, Any]:
    """Check a file header (any registered model type); returns it in today's form (legacy NeRF converted).

    Raises :class:`InvalidFileError` with a clear message on any problem.
    """
    if isinstance(header, dict) and header.get("format") == LEGACY_NERF_FORMAT:
        header = _from_legacy_nerf(header)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidFileError("not an inrkit model (missing or wrong 'format' in the header)")
    if header.get("version") != VERSION:
        raise InvalidFileError(f"unsupported model version {header.get('version')!r} (this inrkit reads {VERSION})")
    kind = header.get("type", "mlp")
    if kind not in MODEL_TYPES:
        raise InvalidFileError(f"unknown model type {kind!r}; this inrkit reads {', '.join(MODEL_TYPES.names())}")
    MODEL_TYPES.get(kind).check(header)
    if not isinstance(header.get("signal", {}), dict) or not isinstance(header.get("extra", {}), dict):
        raise InvalidFileError("header 'signal' and 'extra' must be objects")
    return header


def expected_shapes(header: dict) -> dict[str, tuple[int, ...]]:
    """Tensor shapes a validated header implies, by file name, in digest order."""
    return MODEL_TYPES.get(header.get("type", "mlp")).shapes(header)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if "inrkit" not in metadata:
                raise InvalidFileError(f"{path}: safetensors file without an inrkit header")
            header = validate_header(json.loads(metadata["inrkit"]))
            shapes = expected_shapes(header)
            keys = set(handle.keys())
            if keys != set(shapes):
                raise InvalidFileError(
                    f"{path}: tensors {sorted(keys)} do not match the header (expected {sorted(shapes)})"
                )
            tensors = {}
            for name, shape in shapes.items():
                got = tuple(handle.get_slice(name).get_shape())
                if got != shape:
                    raise InvalidFileError(f"{path}: tensor {name} has shape {got}, header says {shape}")
                tensors[name] = handle.get_tensor(name).float()
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, OSError, RuntimeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise InvalidFileError(f"{path}: no such file") from exc
        raise InvalidFileError(f"{path}: corrupt or truncated model file ({exc})") from exc
    if header.get("sha256") != digest(tensors, list(shapes)):
        raise InvalidFileError(f"{path}: checksum mismatch: the weights were altered or damaged")
    return tensors, header


def _npz_activations(data: Any, n_layers: int, path: Path) -> list[str]:
    if "activations" not in data:
        raise InvalidFileError(f"{path}: .npz needs a string array 'activations'")
    raw = [str(a).strip().lower() for a in np.asarray(data["activations"]).reshape(-1)]
    acts = [_NPZ_ACTIVATION_ALIASES.get(a, a) for a in raw]
    if len(acts) != n_layers or any(a not in ACTIVATIONS for a in acts):
        raise InvalidFileError(f"{path}: 'activations' must list {n_layers} of {list(ACTIVATIONS)}, got {raw}")
    return acts


def _read_npz(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        with np.load(path, allow_pickle=False) as data:
            n_layers = sum(1 for k in data.files if k.startswith("W") and k[1:].isdigit())
            if n_layers == 0 or any(f"W{i}" not in data or f"b{i}" not in data for i in range(n_layers)):
                raise InvalidFileError(f"{path}: .npz needs arrays W0..Wn and b0..bn")
            tensors: dict[str, torch.Tensor] = {}
            for i in range(n_layers):
                w = np.asarray(data[f"W{i}"], dtype=np.float32)
                b = np.asarray(data[f"b{i}"], dtype=np.float32).reshape(-1)
                if w.ndim != 2 or b.shape != (w.shape[0],):
                    raise InvalidFileError(f"{path}: W{i} {w.shape} and b{i} {b.shape} do not fit (W is out x in)")
                if i and w.shape[1] != tensors[f"W{i - 1}"].shape[0]:
                    prev = tensors[f"W{i - 1}"].shape[0]
                    raise InvalidFileError(f"{path}: W{i} takes {w.shape[1]} inputs, W{i - 1} gives {prev}")
                tensors[f"W{i}"], tensors[f"b{i}"] = torch.from_numpy(w), torch.from_numpy(b)
            acts = _npz_activations(data, n_layers, path)
            omegas = np.ones(n_layers)
            if "omega0" in data:
                given = np.asarray(data["omega0"], dtype=np.float64).reshape(-1)
                if given.size not in (1, n_layers):
                    raise InvalidFileError(f"{path}: 'omega0' must hold 1 or {n_layers} values")
                omegas = np.broadcast_to(given, (n_layers,)).copy()
    except (OSError, ValueError, zipfile.BadZipFile, KeyError, EOFError) as exc:
        if isinstance(exc, InrkitError):
            raise
        raise InvalidFileError(f"{path}: cannot read .npz weights ({exc})") from exc
    widths = [int(tensors["W0"].shape[1])] + [int(tensors[f"W{i}"].shape[0]) for i in range(n_layers)]
    header = {"format": FORMAT, "version": VERSION, "widths": widths, "activations": acts,
              "omegas": [float(o) for o in omegas], "coord_dim": widths[0], "fourier": False,
              "signal": {}, "extra": {"source": "npz"}}
    return tensors, header


def model_from_tensors(tensors: dict[str, torch.Tensor], header: dict) -> nn.Module:
    """Build the model (MLP, NeRF MLP, ...) from tensors named as in the file and a validated header."""
    return MODEL_TYPES.get(header.get("type", "mlp")).build(tensors, header)


def load_model(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> tuple[nn.Module, dict]:
    """Load a model from ``.safetensors`` (inrkit, any registered type) or ``.npz`` (plain weight lists).

    Returns ``(model, header)``; ``header["signal"]`` holds the signal (NeRF: scene) metadata.
    Raises :class:`InvalidFileError` with a clear message on any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"{path}: no such model file")
    if path.suffix.lower() == ".npz":
        tensors, header = _read_npz(path)
    else:
        tensors, header = _read_safetensors(path)
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise InvalidFileError(f"{path}: the weights hold NaN or infinite values")
    model = model_from_tensors(tensors, header)
    target = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(target), header
