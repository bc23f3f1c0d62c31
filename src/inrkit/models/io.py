"""Model files: safetensors weights with a JSON header; plain ``.npz`` weight lists.

No pickle is ever used. Loading validates the header and every tensor shape, and a
SHA-256 of the tensor bytes detects altered payloads.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save

from ..errors import InrkitError, InvalidFileError
from ..utils import atomic_write, resolve_device
from .mlp import ACTIVATIONS, MLP

FORMAT = "inrkit-model"
VERSION = 1
MAX_LAYERS = 1024
MAX_WIDTH = 1 << 20
_NPZ_ACTIVATION_ALIASES = {"sin": "sine", "siren": "sine", "linear": "identity", "none": "identity"}


def _tensor_names(n_layers: int, fourier: bool) -> list[str]:
    names = [f"W{i}" for i in range(n_layers)] + [f"b{i}" for i in range(n_layers)]
    return names + (["fourier_B"] if fourier else [])


def _digest(tensors: dict[str, torch.Tensor], names: list[str]) -> str:
    sha = hashlib.sha256()
    for name in names:
        sha.update(name.encode())
        sha.update(tensors[name].detach().cpu().contiguous().float().numpy().tobytes())
    return sha.hexdigest()


def model_tensors(model: MLP) -> dict[str, torch.Tensor]:
    """The model's tensors by file name (``W0..Wn``, ``b0..bn``, ``fourier_B``), float32 on the CPU."""
    tensors = {}
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        tensors[f"W{i}"] = w.detach().float().cpu().contiguous()
        tensors[f"b{i}"] = b.detach().float().cpu().contiguous()
    if model.fourier is not None:
        tensors["fourier_B"] = model.fourier.detach().float().cpu().contiguous()
    return tensors


def model_header(model: MLP, signal: dict | None = None, extra: dict | None = None) -> dict[str, Any]:
    """The JSON header that describes ``model`` (architecture and signal metadata)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "widths": model.widths,
        "activations": model.activations,
        "omegas": model.omegas,
        "coord_dim": model.coord_dim,
        "fourier": model.fourier is not None,
        "signal": signal or {},
        "extra": extra or {},
    }


def model_to_bytes(model: MLP, signal: dict | None = None, extra: dict | None = None) -> bytes:
    """Serialise ``model`` to safetensors bytes (what :func:`save_model` writes)."""
    tensors = model_tensors(model)
    header = model_header(model, signal, extra)
    header["sha256"] = _digest(tensors, _tensor_names(model.num_layers, model.fourier is not None))
    return safetensors_save(tensors, metadata={"inrkit": json.dumps(header)})


def save_model(model: MLP, path: str | os.PathLike, signal: dict | None = None, extra: dict | None = None) -> Path:
    """Save ``model`` as one safetensors file, atomically; returns the path."""
    data = model_to_bytes(model, signal, extra)
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


def _check_header(header: Any) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidFileError("not an inrkit model (missing or wrong 'format' in the header)")
    if header.get("version") != VERSION:
        raise InvalidFileError(f"unsupported model version {header.get('version')!r} (this inrkit reads {VERSION})")
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
    if not isinstance(header.get("signal", {}), dict) or not isinstance(header.get("extra", {}), dict):
        raise InvalidFileError("header 'signal' and 'extra' must be objects")
    return header


def _expected_shapes(header: dict) -> dict[str, tuple[int, ...]]:
    widths = header["widths"]
    shapes = {}
    for i in range(len(widths) - 1):
        shapes[f"W{i}"] = (widths[i + 1], widths[i])
        shapes[f"b{i}"] = (widths[i + 1],)
    if header.get("fourier"):
        coord_dim = header.get("coord_dim")
        if not isinstance(coord_dim, int) or coord_dim < 1 or widths[0] % 2:
            raise InvalidFileError("Fourier model needs a positive 'coord_dim' and an even first width")
        shapes["fourier_B"] = (widths[0] // 2, coord_dim)
    return shapes


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if "inrkit" not in metadata:
                raise InvalidFileError(f"{path}: safetensors file without an inrkit header")
            header = _check_header(json.loads(metadata["inrkit"]))
            shapes = _expected_shapes(header)
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
    names = _tensor_names(len(header["widths"]) - 1, bool(header.get("fourier")))
    if header.get("sha256") != _digest(tensors, names):
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
            tensors = {}
            for i in range(n_layers):
                w = np.asarray(data[f"W{i}"], dtype=np.float32)
                b = np.asarray(data[f"b{i}"], dtype=np.float32).reshape(-1)
                if w.ndim != 2 or b.shape != (w.shape[0],):
                    raise InvalidFileError(f"{path}: W{i} {w.shape} and b{i} {b.shape} do not fit (W is out x in)")
                if i and w.shape[1] != tensors[f"W{i - 1}"].shape[0]:
                    raise InvalidFileError(f"{path}: W{i} takes {w.shape[1]} inputs, W{i - 1} gives {tensors[f'W{i - 1}'].shape[0]}")
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


def model_from_tensors(tensors: dict[str, torch.Tensor], header: dict) -> MLP:
    """Build an MLP from tensors named as in the file and a validated header."""
    fourier = tensors.get("fourier_B") if header.get("fourier") else None
    model = MLP(header["widths"], header["activations"], header["omegas"], fourier=fourier)
    with torch.no_grad():
        for i in range(model.num_layers):
            model.weights[i].copy_(tensors[f"W{i}"])
            model.biases[i].copy_(tensors[f"b{i}"])
    return model


def load_model(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> tuple[MLP, dict]:
    """Load a model from ``.safetensors`` (inrkit) or ``.npz`` (plain weight lists).

    Returns ``(model, header)``; ``header["signal"]`` holds the signal metadata.
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
