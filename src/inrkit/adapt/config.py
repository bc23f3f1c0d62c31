"""AIRe schedules: stages, config files (TOML or JSON) and presets."""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import MAX_CONFIG_BYTES, check_hidden, check_range, parse_json

STAGE_KINDS = ("fit", "finetune", "densify", "twd", "prune")
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class Stage:
    """One step of an AIRe schedule.

    Args:
        kind: ``fit``/``finetune`` (train ``steps``), ``densify`` (add ``n`` first-layer
            neurons), ``twd`` (train ``steps`` with targeted weight decay on ``k`` neurons
            of each of ``layers``), ``prune`` (remove, in each of ``layers``, the ``count``
            neurons with the smallest outgoing L1 norm, or if ``count`` is unset those
            with L1 norm ``<= eps``).
        alpha: final TWD weight (linear ramp from 0).
    """

    kind: str
    steps: int = 0
    n: int = 0
    layers: list[int] = field(default_factory=lambda: [0])
    k: int = 0
    eps: float = 0.01
    count: int | None = None
    alpha: float = 1.0

    def validate(self) -> None:
        if self.kind not in STAGE_KINDS:
            raise InvalidInputError(f"unknown stage kind {self.kind!r}; expected one of {', '.join(STAGE_KINDS)}")
        if self.kind in ("fit", "finetune", "twd") and self.steps < 1:
            raise InvalidInputError(f"{self.kind} stage needs steps >= 1")
        if self.kind == "densify" and self.n < 1:
            raise InvalidInputError("densify stage needs n >= 1")
        if self.kind == "twd" and self.k < 1:
            raise InvalidInputError("twd stage needs k >= 1")
        if self.kind == "prune" and self.count is not None and self.count < 0:
            raise InvalidInputError("prune count must be >= 0")
        check_range(f"{self.kind} stage eps", self.eps, 0, optional=False)
        check_range(f"{self.kind} stage alpha", self.alpha, 0, optional=False)
        for name in ("steps", "n", "k"):
            check_range(f"{self.kind} stage {name}", getattr(self, name), 0, optional=False)


@dataclass
class AireConfig:
    """Model, optimiser and stages of an AIRe run.

    Args:
        arch: a name of :data:`inrkit.models.ARCHITECTURES` (siren, finer, ...).
        hidden: starting hidden widths.
        omega0: first-layer frequency (siren/finer).
        omega_hidden: hidden-layer frequency (siren/finer).
        lr: Adam's learning rate.
        lr_schedule: ``constant`` or ``cosine`` (one schedule over all training stages).
        batch_size: points per step; 0/None = full batch.
        seed: seed of the initialisation, batches and densification.
        stages: the schedule.
    """

    arch: str = "siren"
    hidden: list[int] = field(default_factory=lambda: [512, 512, 512])
    omega0: float = 30.0
    omega_hidden: float = 30.0
    lr: float = 1e-4
    lr_schedule: str = "constant"
    batch_size: int | None = None
    seed: int = 0
    stages: list[Stage] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages if s.kind in ("fit", "finetune", "twd"))

    def scaled(self, factor: float) -> "AireConfig":
        """A copy with every stage's step count multiplied by ``factor`` (at least 1 step)."""
        if not (factor > 0 and math.isfinite(factor)):
            raise InvalidInputError(f"scale must be a finite number > 0, got {factor}")
        stages = [replace(s, steps=max(1, math.ceil(s.steps * factor)) if s.steps else 0) for s in self.stages]
        return replace(self, stages=stages)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_from_dict(data: dict[str, Any]) -> AireConfig:
    """Build and validate an :class:`AireConfig` from a parsed TOML/JSON mapping."""
    data = dict(data)
    raw_stages = data.pop("stage", None) or data.pop("stages", None) or []
    known = set(AireConfig.__dataclass_fields__) - {"stages"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInputError(f"unknown config key(s) {unknown}; expected {sorted(known)} and [[stage]] tables")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise InvalidInputError("config needs at least one [[stage]]")
    stages = []
    for raw in raw_stages:
        if not isinstance(raw, dict) or "kind" not in raw:
            raise InvalidInputError("every stage needs a 'kind'")
        bad = sorted(set(raw) - set(Stage.__dataclass_fields__))
        if bad:
            raise InvalidInputError(f"unknown stage key(s) {bad} in stage {raw.get('kind')!r}")
        stage = Stage(**raw)
        stage.layers = [int(i) for i in (stage.layers if isinstance(stage.layers, list) else [stage.layers])]
        stage.validate()
        stages.append(stage)
    if data.get("batch_size") in (0, None):
        data["batch_size"] = None
    try:
        cfg = AireConfig(**data, stages=stages)
        cfg.hidden = [int(w) for w in cfg.hidden]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"bad config: {exc}") from exc
    if not cfg.hidden or min(cfg.hidden) < 1:
        raise InvalidInputError("hidden widths must be positive")
    cfg.hidden = list(check_hidden(cfg.hidden, "config hidden widths"))
    for name in ("omega0", "omega_hidden", "lr"):
        check_range(f"config {name}", getattr(cfg, name), 0, low_open=True, optional=False)
    check_range("config seed", cfg.seed, 0, optional=False)
    check_range("config batch_size", cfg.batch_size, 1)
    return cfg


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the same parser, packaged as tomli
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InvalidFileError(f"{path}: invalid TOML: {str(exc)[:200]}") from None


def load_config(path: str | Path) -> AireConfig:
    """Read a schedule from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InvalidFileError(f"{path}: a config of {path.stat().st_size} bytes (at most {MAX_CONFIG_BYTES})")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidFileError(f"cannot read config {path}: {exc}") from None
    if path.suffix.lower() == ".json":
        data = parse_json(text, str(path), allow_nan=False)
    else:
        data = _parse_toml(text, path)
    if not isinstance(data, dict):
        raise InvalidFileError(f"{path}: a config must be a table/object")
    return config_from_dict(data)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def load_preset(name: str) -> AireConfig:
    """The built-in schedule ``name`` (``image`` = the paper's image schedule, ``sdf``)."""
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file():
        raise InvalidInputError(f"unknown preset {name!r}; choose from {', '.join(preset_names())}")
    return load_config(path)
