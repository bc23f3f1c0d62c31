"""The one resumable-checkpoint format of inrkit (used by :func:`inrkit.train.fit` and meta-training).

A checkpoint is one safetensors file:

- ``model.<name>``: the model's tensors. A registered architecture (``inrkit.models.io`` can
  describe it) is stored in the model-file layout with its header, so a checkpoint taken after
  surgery rebuilds the smaller model; any other module is stored as its ``state_dict``.
- ``adam.<i>.<key>``: the optimizer state of the ``i``-th parameter (``model.parameters()`` order).
- ``rng``: the state of the batch generator.
- metadata ``"inrkit-checkpoint"``: JSON ``{"format": "inrkit-checkpoint", "version": 2, "kind",
  "model": header | null, "step", "seconds", "history", "config", "fingerprint"}``. Version-1 files
  (written by ``fit`` before the format had a name) still load.

``fingerprint`` (:func:`run_fingerprint`) names the model a run started from and its input; a resume
with another model or input is refused (:func:`check_fingerprint`). Loading parses the metadata with
:func:`inrkit.limits.parse_json` and checks every model tensor's shape and dtype, the generator state
and the optimizer state's shapes before anything is built.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from inrkit.errors import InrkitError, InvalidFileError, InvalidInputError
from inrkit.limits import MAX_MODEL_ELEMENTS, parse_json
from inrkit.models.io import expected_shapes, model_from_tensors, model_header, model_tensors, validate_header
from inrkit.utils import atomic_write

FORMAT = "inrkit-checkpoint"
VERSION = 2
METADATA_KEY = "inrkit-checkpoint"
FINGERPRINT_SAMPLE = 1 << 20  # elements of each task tensor hashed into the input fingerprint (evenly strided)


@dataclass
class Checkpoint:
    """A checkpoint read by :func:`load_checkpoint`.

    Args:
        kind: who wrote it (``"fit"``, ``"meta-train"``).
        tensors: the model tensors (model-file names, or ``state_dict`` keys when ``header`` is None).
        header: the model header of a registered architecture, else ``None``.
        adam: optimizer state per parameter index.
        rng: generator state.
        step, seconds, history, config: progress and the settings it was made with.
        fingerprint: the model the run started from and its input (:func:`run_fingerprint`); empty in
            checkpoints written before it existed.
    """

    kind: str
    tensors: dict[str, Tensor]
    header: dict[str, Any] | None
    adam: dict[int, dict[str, Tensor]]
    rng: Tensor
    step: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)


def _architecture_signature(model: nn.Module) -> dict[str, Any]:
    """The model's architecture (header fields, or ``state_dict`` shapes for an unregistered module)."""
    try:
        header = model_header(model)
    except InvalidInputError:
        return {"state_dict": {k: list(v.shape) for k, v in model.state_dict().items()}}
    return {k: v for k, v in header.items() if k not in ("signal", "extra", "format", "version")}


def _tensor_digest(task: Any) -> str:
    """SHA-256 of the task's public tensors (shape, dtype and up to FINGERPRINT_SAMPLE strided elements each)."""
    sha = hashlib.sha256()
    attributes = getattr(task, "__dict__", {})
    for name in sorted(attributes):
        value = attributes[name]
        if name.startswith("_") or not torch.is_tensor(value):
            continue
        flat = value.detach().reshape(-1)
        step = max(1, flat.numel() // FINGERPRINT_SAMPLE)
        sha.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
        sha.update(flat[::step].cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def run_fingerprint(model: nn.Module, task: Any) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint: the starting model's architecture and the input
    (the task's metadata, number of samples and a digest of its data tensors), as plain JSON values."""
    meta = getattr(task, "metadata", None)
    meta = meta() if callable(meta) else None
    if isinstance(meta, dict):  # the same data under another file name is the same input
        meta = {k: v for k, v in meta.items() if k not in ("name", "source", "path")}
    num = getattr(task, "num_samples", None)
    fingerprint = {"model": _architecture_signature(model),
                   "input": {"metadata": meta,
                             "samples": int(num()) if callable(num) else None, "data": _tensor_digest(task)}}
    return json.loads(json.dumps(fingerprint, default=str))


def check_fingerprint(path: str | Path, checkpoint: Checkpoint, fingerprint: dict[str, Any]) -> None:
    """Refuse (:class:`InvalidInputError`) resuming ``checkpoint`` with another model or input."""
    saved = checkpoint.fingerprint
    if not saved:  # written before fingerprints existed: nothing to compare
        return
    if saved.get("model") != fingerprint.get("model"):
        raise InvalidInputError(f"{path}: checkpoint was made for another model "
                                f"({_describe(saved.get('model'))}, not {_describe(fingerprint.get('model'))}); "
                                "use another --checkpoint or drop --resume")
    if saved.get("input") != fingerprint.get("input"):
        raise InvalidInputError(f"{path}: checkpoint was made with another input; "
                                "use another --checkpoint or drop --resume")


def _describe(model: Any) -> str:
    if isinstance(model, dict) and "widths" in model:
        return f"widths {model['widths']}"
    return str(model)[:120]


def _architecture(model: nn.Module, signal: dict | None) -> tuple[dict[str, Tensor], dict | None]:
    """Model tensors and header for a registered architecture, else the ``state_dict`` and ``None``."""
    try:
        return model_tensors(model), model_header(model, signal)
    except InvalidInputError:  # not a registered architecture
        return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, None


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, *, step: int, seconds: float, history: list[dict],
                    config: dict[str, Any], kind: str = "fit", signal: dict | None = None,
                    fingerprint: dict[str, Any] | None = None) -> Path:
    """Write model, optimizer state, generator state and progress to ``path`` atomically.

    Args:
        path: output file.
        model, optimizer, generator: what to save.
        step, seconds, history: progress so far.
        config: the settings of the run (plain JSON values; checked on resume by the caller).
        kind: who writes it; :func:`load_checkpoint` refuses another kind.
        signal: signal metadata stored in the model header.
        fingerprint: the starting model and input of the run (:func:`run_fingerprint`), checked on resume.
    """
    model_part, header = _architecture(model, signal)
    tensors = {f"model.{k}": v for k, v in model_part.items()}
    for i, p in enumerate(model.parameters()):
        for key, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value):
                tensors[f"adam.{i}.{key}"] = value.detach().cpu().float().contiguous()
    tensors["rng"] = generator.get_state()
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, "model": header, "step": int(step),
            "seconds": float(seconds), "history": history, "config": config, "fingerprint": fingerprint or {}}
    with atomic_write(path) as handle:
        handle.write(safetensors_save(tensors, metadata={METADATA_KEY: json.dumps(meta)}))
    return Path(path)


def _read(path: Path, kind: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = parse_json((handle.metadata() or {})[METADATA_KEY], f"{path}: checkpoint metadata")
            if not isinstance(meta, dict) or meta.get("format", FORMAT) != FORMAT:
                raise InvalidFileError(f"{path}: not a readable {kind} checkpoint")
            if meta.get("kind", "fit") != kind:
                raise InvalidInputError(f"{path}: a {str(meta.get('kind'))[:40]} checkpoint, not a {kind} one")
            names = list(handle.keys())
            total = sum(math.prod(handle.get_slice(k).get_shape()) for k in names)
            if total > 3 * MAX_MODEL_ELEMENTS:  # the model and two Adam moments
                raise InvalidFileError(f"{path}: checkpoint of {total} values (at most {3 * MAX_MODEL_ELEMENTS})")
            tensors = {k: handle.get_tensor(k) for k in names}
    except (KeyError, ValueError, TypeError, SafetensorError, OSError, RuntimeError) as exc:
        if isinstance(exc, InrkitError):
            raise
        raise InvalidFileError(f"{path}: not a readable {kind} checkpoint ({str(exc)[:200]})") from exc
    rng = tensors.get("rng")
    reference = torch.Generator().get_state()
    if rng is None or rng.dtype != reference.dtype or tuple(rng.shape) != tuple(reference.shape):
        raise InvalidFileError(f"{path}: checkpoint without a valid generator state")
    return meta, tensors


def _check_meta(path: Path, meta: dict[str, Any], kind: str) -> None:
    """Types and ranges of the progress fields (a damaged file must not fail later, half-restored)."""
    step, seconds = meta.get("step"), meta.get("seconds")
    if type(step) is not int or step < 0:
        raise InvalidFileError(f"{path}: damaged {kind} checkpoint ('step' must be a non-negative integer)")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise InvalidFileError(f"{path}: damaged {kind} checkpoint ('seconds' must be a finite number >= 0)")
    for key, typ in (("history", list), ("config", dict), ("fingerprint", dict)):
        if meta.get(key) is not None and not isinstance(meta[key], typ):
            raise InvalidFileError(f"{path}: damaged {kind} checkpoint ({key!r} must be a {typ.__name__})")


def _model_tensors(path: Path, tensors: dict[str, Tensor], header: dict | None, kind: str) -> dict[str, Tensor]:
    """The model part; for a registered architecture, exactly the header's tensors with its shapes (float)."""
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    if header is None:
        return model
    shapes = expected_shapes(header)
    if set(model) != set(shapes):
        raise InvalidFileError(f"{path}: damaged {kind} checkpoint (model tensors do not match its header)")
    for name, shape in shapes.items():
        if tuple(model[name].shape) != shape or not model[name].is_floating_point():
            raise InvalidFileError(f"{path}: damaged {kind} checkpoint (model tensor {name} has shape "
                                   f"{tuple(model[name].shape)}, its header says {shape})")
    return {k: model[k] for k in shapes}


def _check_config(path: Path, saved: dict[str, Any], expect: dict[str, Any]) -> None:
    for key, value in expect.items():
        if saved.get(key) != value:
            raise InvalidInputError(f"{path}: checkpoint was made with {key}={saved.get(key)!r}, not {value!r}")


def load_checkpoint(path: str | Path, kind: str = "fit", expect: dict[str, Any] | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the file.
        kind: the writer expected (another kind is refused).
        expect: settings that must equal the saved ``config`` (e.g. a meta checkpoint made with
            other inner steps is refused with :class:`~inrkit.errors.InvalidInputError`).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"{path}: no such checkpoint")
    meta, tensors = _read(path, kind)
    _check_meta(path, meta, kind)
    _check_config(path, meta.get("config") or {}, expect or {})
    try:
        header = None if meta.get("model") is None else validate_header(meta["model"])
        model = _model_tensors(path, tensors, header, kind)
        adam: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("adam."):
                _, index, name = key.split(".", 2)
                adam.setdefault(int(index), {})[name] = value
        return Checkpoint(kind, model, header, adam, tensors["rng"], int(meta["step"]), float(meta["seconds"]),
                          list(meta.get("history") or []), dict(meta.get("config") or {}),
                          dict(meta.get("fingerprint") or {}))
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, InrkitError):
            raise
        raise InvalidFileError(f"{path}: damaged {kind} checkpoint ({str(exc)[:200]})") from exc


def restore_model(checkpoint: Checkpoint, model: nn.Module, device: torch.device) -> nn.Module:
    """The checkpoint's model: rebuilt from its header, or ``model`` with the saved ``state_dict`` loaded."""
    try:
        if checkpoint.header is not None:
            return model_from_tensors(checkpoint.tensors, checkpoint.header).to(device)
        model.load_state_dict(checkpoint.tensors)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise InvalidFileError(f"checkpoint tensors do not match the model ({exc})") from exc
    return model.to(device)


def restore_optimizer(checkpoint: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Put the saved optimizer state onto ``model``'s parameters (``step`` stays on the CPU)."""
    params = list(model.parameters())
    if checkpoint.adam and max(checkpoint.adam) >= len(params):
        raise InvalidFileError("checkpoint optimizer state does not match the model (more parameters)")
    for i, p in enumerate(params):
        saved = checkpoint.adam.get(i)
        for name, value in (saved or {}).items():
            if name != "step" and tuple(value.shape) != tuple(p.shape):
                raise InvalidFileError(f"checkpoint optimizer state {name} of parameter {i} has shape "
                                       f"{tuple(value.shape)}, the parameter {tuple(p.shape)}")
    for i, p in enumerate(params):
        saved = checkpoint.adam.get(i)
        if saved:
            state = {k: v.to(p.device).clone() for k, v in saved.items()}
            if "step" in state:
                state["step"] = saved["step"].cpu().clone()
            optimizer.state[p] = state
