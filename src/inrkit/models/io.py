"""Model files: safetensors weights with a JSON header; plain ``.npz`` weight lists.

One format for every registered model type (:data:`MODEL_TYPES`): the plain :class:`MLP`
(``header["type"]`` absent or ``"mlp"``) and the NeRF MLP (``"nerf"``). No pickle is ever used.
Loading checks the header against :mod:`inrkit.limits` (bounded JSON, finite in-range fields,
element counts) and every tensor shape and dtype BEFORE reading tensors, and ONE SHA-256
(:func:`digest`) over the canonical header and the tensor bytes detects altered headers and payloads.
Version-1 files (checksum over the tensors only) and old ``inrkit-nerf`` files still load, with a
note (``header["notes"]`` and a warning). ``.npz`` weight lists are parsed header-first: each
``.npy`` member's header is checked against the limits and the member's size before its data is read.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import math
import os
import struct
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from inrkit.errors import InrkitError, InvalidFileError, InvalidInputError
from inrkit.limits import (
    MAX_MLP_WIDTH,
    MAX_MODEL_ELEMENTS,
    MAX_MODEL_LAYERS,
    MAX_NPY_HEADER,
    MAX_NPZ_MEMBERS,
    MAX_NPZ_RATIO,
    MAX_NPZ_SLACK,
    MAX_OMEGA,
    MAX_TENSOR_ELEMENTS,
    parse_json,
    regular_file,
)
from inrkit.models.grid import GridConfig, GridEncoding
from inrkit.models.mlp import ACTIVATIONS, MLP
from inrkit.models.nerf_mlp import NeRFConfig, NeRFMLP, nerf_shapes
from inrkit.registry import Registry
from inrkit.utils import atomic_write, resolve_device

FORMAT = "inrkit-model"
VERSION = 2  # 2: the checksum covers the header too; 1: the tensors only (still read, with a note)
LEGACY_NERF_FORMAT = "inrkit-nerf"
MAX_LAYERS = MAX_MODEL_LAYERS
MAX_WIDTH = MAX_MLP_WIDTH
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors dtypes a model tensor may have
V1_NOTE = "version-1 model file: its checksum covers the weights but not the header; re-save it to protect both"
_NPZ_ACTIVATION_ALIASES = {"sin": "sine", "siren": "sine", "linear": "identity", "none": "identity"}


def canonical_header(header: dict[str, Any]) -> bytes:
    """The header without its ``sha256`` as canonical JSON (sorted keys, no spaces): what the checksum covers."""
    body = {k: v for k, v in header.items() if k != "sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def digest(tensors: dict[str, torch.Tensor], names: list[str], header: dict[str, Any] | None = None) -> str:
    """SHA-256 over the canonical ``header`` (when given) and ``name`` + float32 bytes of each tensor.

    Version-2 files store the digest with the header; version-1 files the one without.
    """
    sha = hashlib.sha256()
    if header is not None:
        sha.update(b"inrkit-header\0" + canonical_header(header) + b"\0")
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
    if model.encoding is not None:
        tensors["grid_table"] = model.encoding.table.detach().float().cpu().contiguous()
    return tensors


def _mlp_header(model: MLP) -> dict[str, Any]:
    header = {"widths": model.widths, "activations": model.activations, "omegas": model.omegas,
              "coord_dim": model.coord_dim, "fourier": model.fourier is not None}
    if model.encoding is not None:  # absent for plain MLPs: their headers stay as they always were
        header["encoding"] = {"type": "grid", **model.encoding.config.to_dict()}
    return header


def _grid_config(header: dict) -> GridConfig | None:
    """The header's grid encoding (``None`` without one); InvalidFileError when malformed."""
    if "encoding" not in header:
        return None
    try:
        config = GridConfig.from_dict(header["encoding"])
    except (InvalidInputError, TypeError) as exc:
        raise InvalidFileError(f"invalid grid encoding in the header ({str(exc)[:200]})") from None
    if header.get("fourier"):
        raise InvalidFileError("a header cannot hold both Fourier features and a grid encoding")
    if header["widths"][0] != config.out_dim or header.get("coord_dim", config.dim) != config.dim:
        raise InvalidFileError(f"the grid encoding gives {config.out_dim} features of {config.dim}D coordinates; the "
                               f"header says widths[0] = {header['widths'][0]}, coord_dim = {header.get('coord_dim')}")
    return config


def _mlp_check(header: dict) -> None:
    widths, acts, omegas = header.get("widths"), header.get("activations"), header.get("omegas")
    if not (isinstance(widths, list) and 2 <= len(widths) <= MAX_LAYERS + 1):
        raise InvalidFileError(f"header 'widths' must be a list of 2 to {MAX_LAYERS + 1} sizes")
    if not all(type(w) is int and 0 < w <= MAX_WIDTH for w in widths):
        raise InvalidFileError(f"header 'widths' must hold integers in [1, {MAX_WIDTH}]: {str(widths)[:200]}")
    n = len(widths) - 1
    if not (isinstance(acts, list) and len(acts) == n and all(isinstance(a, str) and a in ACTIVATIONS for a in acts)):
        raise InvalidFileError(f"header 'activations' must list {n} of {list(ACTIVATIONS)}")
    if not (isinstance(omegas, list) and len(omegas) == n
            and all(type(o) in (int, float) and math.isfinite(o) and 0 < o <= MAX_OMEGA for o in omegas)):
        raise InvalidFileError(f"header 'omegas' must list {n} finite numbers in (0, {MAX_OMEGA:g}]: "
                               f"{str(omegas)[:200]}")
    if not isinstance(header.get("fourier", False), bool):
        raise InvalidFileError("header 'fourier' must be true or false")
    coord_dim = header.get("coord_dim", widths[0])
    if type(coord_dim) is not int or not 0 < coord_dim <= MAX_WIDTH:
        raise InvalidFileError(f"header 'coord_dim' must be an integer in [1, {MAX_WIDTH}]")
    _grid_config(header)


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
    grid = _grid_config(header)
    if grid is not None:
        shapes["grid_table"] = (grid.num_entries(), grid.features)
    return shapes


def _mlp_build(tensors: dict[str, torch.Tensor], header: dict) -> MLP:
    fourier = tensors.get("fourier_B") if header.get("fourier") else None
    grid = _grid_config(header)
    encoding = None
    if grid is not None:
        encoding = GridEncoding(grid)
        with torch.no_grad():
            encoding.table.copy_(tensors["grid_table"])
    model = MLP(header["widths"], header["activations"], header["omegas"], fourier=fourier, encoding=encoding)
    with torch.no_grad():
        for i in range(model.num_layers):
            model.weights[i].copy_(tensors[f"W{i}"])
            model.biases[i].copy_(tensors[f"b{i}"])
    return model


def _nerf_config(header: dict) -> NeRFConfig:
    try:
        return NeRFConfig(**header["nerf"]).validate()
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidFileError(f"invalid NeRF architecture in the header ({str(exc)[:200]})") from None


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
    """The model's tensors by file name (MLP: ``W0..Wn``, ``b0..bn``, ``fourier_B``, ``grid_table``), float32, CPU."""
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


WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
"""How a model file may store its weights (loading always gives float32)."""


def model_to_bytes(model: nn.Module, signal: dict | None = None, extra: dict | None = None,
                   weight_dtype: str = "float32") -> bytes:
    """Serialise ``model`` to safetensors bytes (what :func:`save_model` writes).

    ``weight_dtype`` ``float16`` stores every tensor in half precision (half the bytes; the checksum covers
    the stored values). Refuses (:class:`InvalidInputError`) a model whose file :func:`load_model` would
    refuse: a header beyond the JSON limits (e.g. metadata nested too deep), NaN or out-of-range fields, too
    many elements, or weights beyond float16's range.
    """
    if weight_dtype not in WEIGHT_DTYPES:
        raise InvalidInputError(f"weight dtype must be one of {list(WEIGHT_DTYPES)}, got {str(weight_dtype)[:40]!r}")
    tensors = model_tensors(model)
    if weight_dtype != "float32":
        tensors = {name: t.to(WEIGHT_DTYPES[weight_dtype]) for name, t in tensors.items()}
        if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
            raise InvalidInputError(f"cannot store this model as {weight_dtype}: a weight is beyond its range")
    header = model_header(model, signal, extra)
    try:  # the header as a reader will see it (JSON round trip: tuples, int keys), checked like a reader
        parsed = validate_header(parse_json(json.dumps(header), "model header"))
    except RecursionError:
        raise InvalidInputError("cannot save this model: its header is nested too deep") from None
    except (InvalidFileError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"cannot save this model: {str(exc)[:300]}") from None
    parsed["sha256"] = digest(tensors, list(expected_shapes(parsed)), parsed)
    return safetensors_save(tensors, metadata={"inrkit": json.dumps(parsed)})


def save_model(model: nn.Module, path: str | os.PathLike, signal: dict | None = None,
               extra: dict | None = None, weight_dtype: str = "float32") -> Path:
    """Save ``model`` as one safetensors file, atomically (weights as ``weight_dtype``); returns the path."""
    data = model_to_bytes(model, signal, extra, weight_dtype)
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


def _from_legacy_nerf(header: dict) -> dict[str, Any]:
    """An ``inrkit-nerf`` v1 header in the current form (same tensors and digest order)."""
    if header.get("version") != 1:
        raise InvalidFileError(f"unsupported NeRF file version {header.get('version')!r}")
    return {"format": FORMAT, "version": 1, "type": "nerf", "nerf": header.get("config"),
            "signal": header.get("scene", {}), "extra": header.get("extra", {}), "sha256": header.get("sha256")}


def validate_header(header: Any) -> dict[str, Any]:
    """Check a file header (any registered model type); returns it in the current form (legacy NeRF converted).

    Raises :class:`InvalidFileError` with a clear message on any problem.
    """
    if isinstance(header, dict) and header.get("format") == LEGACY_NERF_FORMAT:
        header = _from_legacy_nerf(header)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidFileError("not an inrkit model (missing or wrong 'format' in the header)")
    version = header.get("version")
    if type(version) is not int or not 1 <= version <= VERSION:
        raise InvalidFileError(f"unsupported model version {str(version)[:20]} (this inrkit reads 1 to {VERSION})")
    kind = header.get("type", "mlp")
    if not isinstance(kind, str) or kind not in MODEL_TYPES:
        known = ", ".join(MODEL_TYPES.names())
        raise InvalidFileError(f"unknown model type {str(kind)[:40]!r}; this inrkit reads {known}")
    MODEL_TYPES.get(kind).check(header)
    if not isinstance(header.get("signal", {}), dict) or not isinstance(header.get("extra", {}), dict):
        raise InvalidFileError("header 'signal' and 'extra' must be objects")
    if "sha256" in header and not isinstance(header["sha256"], str):
        raise InvalidFileError("header 'sha256' must be a string")
    sizes = [math.prod(shape) for shape in expected_shapes(header).values()]
    if max(sizes, default=0) > MAX_TENSOR_ELEMENTS or sum(sizes) > MAX_MODEL_ELEMENTS:
        raise InvalidFileError(f"the header implies {sum(sizes)} weights (at most {MAX_TENSOR_ELEMENTS} per tensor "
                               f"and {MAX_MODEL_ELEMENTS} per model)")
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
            header = validate_header(parse_json(metadata["inrkit"], f"{path}: header"))
            shapes = expected_shapes(header)
            keys = set(handle.keys())
            if keys != set(shapes):
                raise InvalidFileError(
                    f"{path}: tensors {sorted(keys)[:20]} do not match the header (expected {sorted(shapes)[:20]})"
                )
            for name, shape in shapes.items():  # every shape and dtype before any tensor is read
                part = handle.get_slice(name)
                got, dtype = tuple(part.get_shape()), part.get_dtype()
                if got != shape:
                    raise InvalidFileError(f"{path}: tensor {name} has shape {got}, header says {shape}")
                if dtype not in FLOAT_DTYPES:
                    raise InvalidFileError(f"{path}: tensor {name} has dtype {dtype} (expected one of {FLOAT_DTYPES})")
            tensors = {name: handle.get_tensor(name).float() for name in shapes}
    except (SafetensorError, ValueError, TypeError, OSError, RuntimeError, OverflowError) as exc:
        if isinstance(exc, InrkitError):
            raise
        if isinstance(exc, FileNotFoundError):
            raise InvalidFileError(f"{path}: no such file") from exc
        raise InvalidFileError(f"{path}: corrupt or truncated model file ({str(exc)[:200]})") from exc
    version = header.get("version")
    expected = digest(tensors, list(shapes), header if version != 1 else None)
    if header.get("sha256") != expected:
        what = "the weights were altered or damaged" if version == 1 else "the header or the weights were altered"
        raise InvalidFileError(f"{path}: checksum mismatch: {what}")
    if version == 1:
        warnings.warn(f"{path}: {V1_NOTE}", stacklevel=3)
        header = {**header, "notes": [*header.get("notes", []), V1_NOTE]}
    return tensors, header


def _npz_activations(raw_array: np.ndarray, n_layers: int, path: Path) -> list[str]:
    raw = [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in raw_array.reshape(-1).tolist()]
    raw = [a.strip().lower() for a in raw]
    acts = [_NPZ_ACTIVATION_ALIASES.get(a, a) for a in raw]
    if len(acts) != n_layers or any(a not in ACTIVATIONS for a in acts):
        raise InvalidFileError(
            f"{path}: 'activations' must list {n_layers} of {list(ACTIVATIONS)}, got {str(raw[:MAX_LAYERS])[:200]}")
    return acts


#: what reading a hostile zip/.npy can raise besides our own checks (all become InvalidFileError);
#: RuntimeError: an encrypted member, NotImplementedError: an unknown compression method
_NPZ_ERRORS = (OSError, ValueError, EOFError, LookupError, TypeError, OverflowError, RecursionError, SyntaxError,
               SystemError, NotImplementedError, zipfile.BadZipFile, zlib.error, struct.error, tokenize.TokenError,
               lzma.LZMAError, AttributeError, UnicodeError, RuntimeError, zipfile.LargeZipFile)


def _npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, kinds: str) -> np.ndarray:
    """One ``.npy`` member of an ``.npz``: the header is parsed and checked (dtype kind in ``kinds``,
    element count, size = header + data exactly, inflation ratio) BEFORE any data is read."""
    name = info.filename
    if info.file_size > MAX_NPZ_RATIO * info.compress_size + MAX_NPZ_SLACK:
        raise InvalidFileError(f"{path}: member {name} inflates {info.compress_size} bytes to {info.file_size} "
                               f"(more than {MAX_NPZ_RATIO}x)")
    with archive.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=MAX_NPY_HEADER)
        else:
            raise InvalidFileError(f"{path}: member {name} has unsupported .npy version {version}")
        if (dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in kinds
                or dtype.itemsize == 0):
            raise InvalidFileError(f"{path}: member {name} has unsupported dtype {dtype.str}")
        if not all(type(n) is int and n >= 0 for n in shape):
            raise InvalidFileError(f"{path}: member {name} has an invalid shape")
        count = math.prod(shape)
        if count > MAX_TENSOR_ELEMENTS:
            raise InvalidFileError(f"{path}: member {name} has {count} elements (at most {MAX_TENSOR_ELEMENTS})")
        nbytes = count * dtype.itemsize
        if fp.tell() + nbytes != info.file_size:
            raise InvalidFileError(f"{path}: member {name} holds {info.file_size - fp.tell()} data bytes, "
                                   f"its header says {nbytes}")
        data = fp.read(nbytes)
        if len(data) != nbytes:
            raise InvalidFileError(f"{path}: member {name} is truncated")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_npz(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        with zipfile.ZipFile(path) as archive, np.errstate(over="ignore", invalid="ignore"):  # inf: refused below
            infos = archive.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise InvalidFileError(f"{path}: .npz with {len(infos)} members (at most {MAX_NPZ_MEMBERS})")
            members = {i.filename[:-4]: i for i in infos if i.filename.endswith(".npy")}
            if len(members) != sum(1 for i in infos if i.filename.endswith(".npy")):
                raise InvalidFileError(f"{path}: .npz with duplicate member names")
            n_layers = sum(1 for k in members if k.startswith("W") and k[1:].isdigit())
            if n_layers > MAX_LAYERS:
                raise InvalidFileError(f"{path}: .npz with {n_layers} layers (at most {MAX_LAYERS})")
            if n_layers == 0 or any(f"W{i}" not in members or f"b{i}" not in members for i in range(n_layers)):
                raise InvalidFileError(f"{path}: .npz needs arrays W0..Wn and b0..bn")
            if "activations" not in members:
                raise InvalidFileError(f"{path}: .npz needs a string array 'activations'")
            total = 0
            tensors: dict[str, torch.Tensor] = {}
            for i in range(n_layers):
                w = _npy_member(archive, members[f"W{i}"], path, "fiu")
                b = _npy_member(archive, members[f"b{i}"], path, "fiu").reshape(-1)
                if w.ndim != 2 or b.shape != (w.shape[0],):
                    raise InvalidFileError(f"{path}: W{i} {w.shape} and b{i} {b.shape} do not fit (W is out x in)")
                if i and w.shape[1] != tensors[f"W{i - 1}"].shape[0]:
                    prev = tensors[f"W{i - 1}"].shape[0]
                    raise InvalidFileError(f"{path}: W{i} takes {w.shape[1]} inputs, W{i - 1} gives {prev}")
                total += w.size + b.size
                if total > MAX_MODEL_ELEMENTS:
                    raise InvalidFileError(f"{path}: more than {MAX_MODEL_ELEMENTS} weights")
                tensors[f"W{i}"] = torch.from_numpy(w.astype(np.float32))
                tensors[f"b{i}"] = torch.from_numpy(b.astype(np.float32))
            acts = _npz_activations(_npy_member(archive, members["activations"], path, "US"), n_layers, path)
            omegas = np.ones(n_layers)
            if "omega0" in members:
                given = _npy_member(archive, members["omega0"], path, "fiu").astype(np.float64).reshape(-1)
                if given.size not in (1, n_layers):
                    raise InvalidFileError(f"{path}: 'omega0' must hold 1 or {n_layers} values")
                omegas = np.broadcast_to(given, (n_layers,)).copy()
    except _NPZ_ERRORS as exc:
        if isinstance(exc, InrkitError):
            raise
        if isinstance(exc, FileNotFoundError):
            raise InvalidFileError(f"{path}: no such file") from None
        raise InvalidFileError(f"{path}: cannot read .npz weights ({type(exc).__name__}: {str(exc)[:200]})") from None
    widths = [int(tensors["W0"].shape[1])] + [int(tensors[f"W{i}"].shape[0]) for i in range(n_layers)]
    header = {"format": FORMAT, "version": VERSION, "widths": widths, "activations": acts,
              "omegas": [float(o) for o in omegas], "coord_dim": widths[0], "fourier": False,
              "signal": {}, "extra": {"source": "npz"}}
    try:
        validate_header(header)
    except InvalidFileError as exc:
        raise InvalidFileError(f"{path}: {exc}") from None
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
    regular_file(path, "model file")
    if path.suffix.lower() == ".npz":
        tensors, header = _read_npz(path)
    else:
        tensors, header = _read_safetensors(path)
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise InvalidFileError(f"{path}: the weights hold NaN or infinite values")
    model = model_from_tensors(tensors, header)
    target = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(target), header
