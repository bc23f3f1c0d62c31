"""Shared pieces of the CLI commands: flags generated from configs, parsing helpers, output.

:func:`add_config` turns the fields of a config dataclass (or the keyword parameters of a library
function) into flags: type, default and help come from the source itself (the help from the
``Args:`` section of its docstring), so every default lives in one place and ``--help`` shows it.
:func:`build_config` turns the parsed flags back into the config (or the keyword arguments).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import re
import sys
import types
import typing
from typing import Any, Callable, Iterable, Mapping, Sequence

from inrkit.errors import InvalidInputError
from inrkit.utils import to_json

_CONVERT = "_convert"  # namespace key: dest -> converter applied by build_config to string values
_FIELDS = "_config_fields"  # namespace key: the dests add_config created (what build_config reads)
_UNSET = object()


# ------------------------------------------------------------------ parsing
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


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``"ROW0:ROW1,COL0:COL1"`` -> ``(row0, row1, col0, col1)``."""
    rows, _, cols = text.partition(",")
    try:
        r0, r1 = (int(v) for v in rows.split(":"))
        c0, c1 = (int(v) for v in cols.split(":"))
    except ValueError as exc:
        raise InvalidInputError(f"--crop {text!r}: use ROW0:ROW1,COL0:COL1, e.g. 128:384,256:512") from exc
    return r0, r1, c0, c1


def choices_of(registry: Iterable[str]) -> tuple[str, ...]:
    """The names of a :class:`inrkit.registry.Registry` (or any iterable of names)."""
    names = getattr(registry, "names", None)
    return tuple(names() if callable(names) else registry)


# ------------------------------------------------------------ docstrings
def docstring_args(obj: Any) -> dict[str, str]:
    """``{name: text}`` from the ``Args:`` section of ``obj``'s docstring (``a, b: text`` names both)."""
    doc = inspect.getdoc(obj) or ""
    out: dict[str, str] = {}
    names: list[str] = []
    in_args, indent = False, 0
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args, indent, names = True, len(line) - len(line.lstrip()), []
            continue
        if not in_args:
            continue
        level = len(line) - len(line.lstrip())
        if stripped and level <= indent:
            in_args = False
            continue
        match = re.match(r"^([\w\s,*]+?):\s*(.*)$", stripped)
        if match and level <= indent + 4 and all(n.strip().isidentifier() for n in match.group(1).split(",")):
            names = [n.strip() for n in match.group(1).split(",")]
            for name in names:
                out[name] = match.group(2)
        elif names and stripped:
            for name in names:
                out[name] = f"{out[name]} {stripped}".strip()
    return {k: re.sub(r"``?([^`]*)``?", r"\1", re.sub(r":\w+:`", "`", v)) for k, v in out.items()}


# ---------------------------------------------------------- config fields
def _params(source: Any) -> list[tuple[str, Any, Any]]:
    """``(name, type, default)`` of a dataclass's fields or a function's keyword parameters."""
    try:
        hints = typing.get_type_hints(source)
    except (NameError, TypeError):  # an annotation that cannot be resolved here: infer from the default
        hints = {}
    if dataclasses.is_dataclass(source):
        out = []
        for f in dataclasses.fields(source):
            if not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else _UNSET)
            out.append((f.name, hints.get(f.name, _guess(default)), default))
        return out
    empty = inspect.Parameter.empty
    return [(p.name, hints.get(p.name, _guess(p.default)), p.default if p.default is not empty else _UNSET)
            for p in inspect.signature(source).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _guess(default: Any) -> Any:
    return type(default) if isinstance(default, (bool, int, float, str)) else str


def _base_type(tp: Any) -> Any:
    """``X`` for ``X | None``; ``str`` for path-like unions."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if any(a is str for a in args):
            return str
        return args[0] if len(args) == 1 else Any
    return tp


def _flag_type(tp: Any, name: str) -> tuple[str, Any, tuple | None]:
    """``(kind, converter, choices)`` with kind one of bool, scalar, list."""
    tp = _base_type(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return "bool", None, None
    if tp in (int, float, str):
        return "scalar", tp, None
    if origin is typing.Literal:
        return "scalar", type(args[0]), tuple(args)
    if origin in (tuple, list, Sequence, typing.Sequence) or (origin is not None and issubclass(origin, Sequence)):
        item = args[0] if args else int
        if item is float:
            return "list", lambda text: tuple(parse_floats(text, f"--{name.replace('_', '-')}")), None
        return "list", lambda text: tuple(parse_ints(text, f"--{name.replace('_', '-')}")), None
    raise TypeError(f"no CLI flag for {name}: {tp!r} (skip it or give a parser)")


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def add_config(
    parser: argparse.ArgumentParser,
    source: Any,
    *,
    only: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    flags: Mapping[str, str | Sequence[str]] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    parsers: Mapping[str, Callable[[str], Any]] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    helps: Mapping[str, str] | None = None,
    optional: Sequence[str] = (),
    exclusive: Sequence[Sequence[str]] = (),
) -> list[str]:
    """Add one flag per field of ``source`` (a config dataclass or a function) to ``parser``.

    Args:
        parser: the subcommand's parser.
        source: a dataclass (fields) or a function (keyword parameters with defaults).
        only: add just these fields (in this order); else every field not in ``skip``.
        skip: fields not exposed on the command line.
        flags: flag spelling(s) per field (default ``--field-name``); entries for absent fields are ignored.
        aliases: extra (old) spellings per field, e.g. ``{"steps": ["--iters"]}``.
        parsers: converter of the flag's text per field (run by :func:`build_config`, so errors are one line).
        choices: allowed values per field (e.g. read from a registry).
        helps: help text per field where the docstring has none.
        optional: fields whose flag defaults to unset, so the source's default (or another flag) applies.
        exclusive: groups of fields that may not be given together.
    Returns the names of the fields added.
    """
    flags, aliases, parsers = dict(flags or {}), dict(aliases or {}), dict(parsers or {})
    choices, helps = dict(choices or {}), dict(helps or {})
    docs = docstring_args(source)
    params = {name: (tp, default) for name, tp, default in _params(source)}
    added = set(parser.get_default(_FIELDS) or ())
    names = [n for n in (only or params)
             if n in params and n not in skip and n not in added and params[n][1] is not _UNSET]
    groups = {n: parser.add_mutually_exclusive_group() for g in exclusive for n in g[:1]}
    group_of = {n: groups[g[0]] for g in exclusive for n in g if g[0] in groups}
    convert = dict(parser.get_default(_CONVERT) or {})
    for name in names:
        tp, default = params[name]
        kind, conv, allowed = _flag_type(tp, name) if name not in parsers else ("list", parsers[name], None)
        allowed = tuple(choices[name]) if name in choices else allowed
        spell = flags.get(name, f"--{name.replace('_', '-')}")
        spellings = [spell] if isinstance(spell, str) else list(spell)
        text = (helps.get(name) or docs.get(name) or "").replace("%", "%%")
        target = group_of.get(name, parser)
        if kind == "bool" and default is True:
            off = [s.replace("--", "--no-", 1) for s in spellings] if name not in flags else spellings
            target.add_argument(*off, *aliases.get(name, ()), dest=name, action="store_false",
                                help=f"turn off: {text}" if text else "turn off")
            continue
        if kind == "bool":
            target.add_argument(*spellings, *aliases.get(name, ()), dest=name, action="store_true",
                                help=f"{text} (default: off)".strip())
            continue
        unset = name in optional or kind == "list"
        if kind == "list" and conv is not None:
            convert[name] = conv
        metavar = None if allowed is not None else spellings[-1].lstrip("-").upper().replace("-", "_")
        ftype: Any = conv if kind == "scalar" and allowed is None and conv is not str else None
        target.add_argument(*spellings, *aliases.get(name, ()), dest=name, choices=allowed, metavar=metavar,
                            type=ftype,
                            default=None if unset else default,
                            help=f"{text} (default: {_show(default)})".strip())
    parser.set_defaults(**{_CONVERT: convert, _FIELDS: tuple(added | set(names))})
    return names


def build_config(source: Any, args: argparse.Namespace, **overrides: Any) -> Any:
    """``source(**flags)`` for a dataclass (so its ``__post_init__`` validates), else the keyword dict.

    Only flags made by :func:`add_config` are read (a flag shared by two sources feeds both); fields
    without a flag on this command, and unset optional flags, keep the source's default;
    ``overrides`` are passed as given.
    """
    convert = getattr(args, _CONVERT, {}) or {}
    flagged = set(getattr(args, _FIELDS, ()) or ())
    values: dict[str, Any] = {}
    for name, _, default in _params(source):
        if name in overrides or name not in flagged:
            continue
        value = getattr(args, name)
        if isinstance(value, str) and name in convert:
            value = convert[name](value)
        if value is not None or default is None or default is _UNSET:
            values[name] = value
    values.update(overrides)
    return typing.cast(Any, source)(**values) if dataclasses.is_dataclass(source) else values


def config_dict(config: Any, drop: Sequence[str] = ()) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (for the model header's ``extra["config"]``)."""
    data = dataclasses.asdict(typing.cast(Any, config)) if dataclasses.is_dataclass(config) else dict(config)
    return json.loads(to_json({k: v for k, v in data.items() if k not in drop}, indent=None))


# ------------------------------------------------------------------ flags
def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: pick automatically)")


# ------------------------------------------------------------------ output
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
