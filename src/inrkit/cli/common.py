"""Shared pieces of the CLI commands: flags, parsing helpers, output."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..errors import InvalidInputError
from ..utils import to_json


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: pick automatically)")


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else (1e308 if obj > 0 else -1e308)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def emit(result: dict[str, Any], as_json: bool) -> int:
    """Print ``result``: one JSON object with ``--json``, else aligned ``key: value`` lines."""
    if as_json:
        print(to_json(_clean(result), indent=None))
        return 0
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, (dict, list)):
            value = json.dumps(_clean(value))
        print(f"{key:<{width}}  {value}")
    sys.stdout.flush()
    return 0


def parse_floats(text: str, what: str) -> list[float]:
    """Parse ``"a,b,c"`` into floats with a clear error."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InvalidInputError(f"cannot parse {what} {text!r}: expected comma-separated numbers") from exc


def parse_ints(text: str, what: str) -> list[int]:
    """Parse ``"a,b,c"`` (or ``"axb"``) into integers with a clear error."""
    try:
        return [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise InvalidInputError(f"cannot parse {what} {text!r}: expected comma-separated integers") from exc

