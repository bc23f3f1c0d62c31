"""The one resumable-checkpoint format of inrkit (used by :func:`inrkit.train.fit` and meta-training).

A checkpoint is one safetensors file:

- ``model.<name>``: the model's tensors. A registered architecture (``inrkit.models.io`` can
  describe it) is stored in the model-file layout with its header, so a checkpoint taken after
  surgery rebuilds the smaller model; any other module is stored as its ``state_dict``.
- ``adam.<i>.<key>``: the optimizer state of the ``i``-th parameter (``model.parameters()`` order).
- ``rng``: the state of the batch generator.
- metadata ``"inrkit-checkpoint"``: JSON ``{"format": "inrkit-checkpoint", "version": 2, "kind",
  "model": header | null, "step", "seconds", "history", "config"}``. Version-1 files (written by
  ``fit`` before the format had a name) still load.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models.io import expected_shapes, model_from_tensors, model_header, model_tensors, validate_header
from inrkit.utils import atomic_write

FORMAT = "inrkit-checkpoint"
VERSION = 2
METADATA_KEY = "inrkit-checkpoint"


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


def _architecture(model: nn.Module, signal: dict | None) -> tuple[dict[str, Tensor], dict | None]:
    """Model tensors and header for a registered architecture, else the ``state_dict`` and ``None``."""
    try:
        return model_tensors(model), model_header(model, signal)
    except InvalidInputError:  # not a registered architecture
        return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, None


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, *, step: int, seconds: float, history: list[dict],
                    config: dict[str, Any], kind: str = "fit", signal: dict | None = None) -> Path:
    """Write model, optimizer state, generator state and progress to ``path`` atomically.

    Args:
        path: output file.
        model, optimizer, generator: what to save.
        step, seconds, history: progress so far.
        config: the settings of the run (plain JSON values; checked on resume by the caller).
        kind: who writes it; :func:`load_checkpoint` refuses another kind.
        signal: signal metadata stored in the model header.
    """
    model_part, header = _architecture(model, signal)
    tensors = {f"model.{k}": v for k, v in model_part.items()}
    for i, p in enumerate(model.parameters()):
        for key, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value):
                tensors[f"adam.{i}.{key}"] = value.detach().cpu().float().contiguous()
    tensors["rng"] = generator.get_state()
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, "model": header, "step": int(step),
            "seconds": float(seconds), "history": history, "config": config}
    with atomic_write(path) as handle:
        handle.write(safetensors_save(tensors, metadata={METADATA_KEY: json.dumps(meta)}))
    return Path(path)


def _read(path: Path, kind: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})[METADATA_KEY])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (KeyError, ValueError, SafetensorError, OSError) as exc:
        raise InvalidFileError(f"{path}: not a readable {kind} checkpoint ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format", FORMAT) != FORMAT or "rng" not in tensors:
        raise InvalidFileError(f"{path}: not a readable {kind} checkpoint")
    if meta.get("kind", "fit") != kind:
        raise InvalidInputError(f"{path}: a {meta.get('kind')} checkpoint, not a {kind} one")
    return meta, tensors


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
    _check_config(path, meta.get("config") or {}, expect or {})
    try:
        header = None if meta.get("model") is None else validate_header(meta["model"])
        names = expected_shapes(header) if header is not None else None
        model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        if names is not None:
            model = {k: model[k] for k in names}
        adam: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("adam."):
                _, index, name = key.split(".", 2)
                adam.setdefault(int(index), {})[name] = value
        return Checkpoint(kind, model, header, adam, tensors["rng"], int(meta["step"]), float(meta["seconds"]),
                          list(meta.get("history") or []), dict(meta.get("config") or {}))
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidFileError(f"{path}: damaged {kind} checkpoint ({exc})") from exc


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
    for i, p in enumerate(model.parameters()):
        saved = checkpoint.adam.get(i)
        if saved:
            state = {k: v.to(p.device).clone() for k, v in saved.items()}
            if "step" in state:
                state["step"] = saved["step"].cpu().clone()
            optimizer.state[p] = state
