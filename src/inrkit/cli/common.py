"""Shared pieces of the CLI commands: flags generated from configs, parsing helpers, output.

:func:`add_config` turns the fields of a config dataclass (or the keyword parameters of a library
function) into flags: type, default and help come from the source itself (the help from the
``Args:`` section of its docstring), so every default lives in one place and ``--help`` shows it.
:func:`build_config` turns the parsed flags back into the config (or the keyword arguments).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import math
import os
import re
import sys
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NoReturn, Sequence

from inrkit.cli.suggest import SuggestingParser
from inrkit.errors import InvalidInputError
from inrkit.limits import MAX_LR, MAX_OMEGA, MAX_SEED, MIN_OMEGA, check_hidden

_CONVERT = "_convert"  # namespace key: dest -> converter applied by build_config to string values
_FIELDS = "_config_fields"  # namespace key: the dests add_config created (what build_config reads)
_OUTPUTS = "_outputs"  # namespace key: dest -> (flag, suffixes, folder) of the outputs add_output declared
_SIGNED = "_signed_flags"  # namespace key: the number flags declared signed (may be negative)
_UNSET = object()
OUTPUT_DESTS = ("output", "history_path", "checkpoint_path", "preview")  # dests checked as outputs by default
Range = tuple[float | None, float | None]


# a value that starts with '-' but is a number or a list of numbers ("-1e-3", "-4,4", "-inf", "-2:5,0:3"):
# argparse would take it for an unknown flag ("expected one argument"); it is parsed as a value, so the
# flag's range check answers (e.g. "--lr must be > 0")
_NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|inf|nan)[\w.,:+\-]*$", re.IGNORECASE)


class ArgumentParser(SuggestingParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), like every other error.

    A negative number or list (``--lr -1e-3``, ``--size -4,4``) is read as the flag's value, so the
    flag's own check refuses it with its range. A misspelt flag, choice or command gets a suggestion
    (:class:`inrkit.cli.suggest.SuggestingParser`).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {shorten(self.with_hints(message))} (see: {self.prog} --help)\n")

    def _parse_optional(self, arg_string: str) -> Any:
        if _NEGATIVE_VALUE.match(arg_string) and arg_string not in self._option_string_actions:
            return None
        return super()._parse_optional(arg_string)


MAX_MESSAGE = 300  # characters of one error line (a longer one keeps its start and end)


def shorten(text: object, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line, at most ``limit`` characters (the middle replaced by ``...``)."""
    line = " ".join(str(text).split())
    if len(line) <= limit:
        return line
    keep = limit - 5
    return f"{line[: keep - keep // 4]} ... {line[-(keep // 4):]}"


# ------------------------------------------------------------------ parsing
def parse_floats(text: str, what: str) -> list[float]:
    """Parse ``"a,b,c"`` into finite floats with a clear error."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InvalidInputError(f"cannot parse {what} {text!r}: expected comma-separated numbers") from exc
    if not all(math.isfinite(v) for v in values):
        raise InvalidInputError(f"{what} {text!r}: every number must be finite")
    return values


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
    try:
        return dict(_cached_docstring_args(obj))
    except TypeError:  # not hashable
        return _docstring_args(obj)


@functools.lru_cache(maxsize=256)
def _cached_docstring_args(obj: Any) -> dict[str, str]:
    return _docstring_args(obj)


def _docstring_args(obj: Any) -> dict[str, str]:
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
        return list(_cached_params(source))
    except TypeError:  # not hashable
        return _read_params(source)


@functools.lru_cache(maxsize=256)
def _cached_params(source: Any) -> tuple[tuple[str, Any, Any], ...]:
    return tuple(_read_params(source))


def _read_params(source: Any) -> list[tuple[str, Any, Any]]:
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


def _params_names(source: Any) -> list[str]:
    return [name for name, _, _ in _params(source)]


def _help_with_default(text: str, default: Any, span: Any) -> str:
    """A flag's help: its text and its default (unless the text states it) and range."""
    if "(default:" in text and default is None:  # e.g. "(default: 1000, or what --arch auto chose)"
        bounds = _span(span)
        return f"{text.rstrip('.')[:-1]}{bounds})".strip() if bounds and text.rstrip(".").endswith(")") else text
    return f"{text} (default: {_show(default)}{_span(span)})".strip()


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


def _number(tp: type, flag: str, signed: bool, bounds: Range | None) -> Callable[[str], Any]:
    """The argparse ``type`` of a number flag: finite, ``>= 0`` unless ``signed``, within ``bounds``."""
    low, high = bounds or (None, None)
    if low is None and not signed:
        low = 0

    def convert(text: str) -> Any:
        try:
            value = tp(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if tp is int else 'a number'}, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be >= {_num(low)}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {_num(high)}, got {text}")
        return value

    convert.__name__ = tp.__name__
    return convert


def _checked_list(conv: Callable[[str], Any], name: str, flag: str, signed: bool,
                  bounds: Range | None) -> Callable[[str], Any]:
    """Wrap a list converter: every number finite, ``>= 0`` unless ``signed``, within ``bounds``;
    a field named ``hidden`` is network widths (:func:`inrkit.limits.check_hidden`)."""
    low, high = bounds or (None, None)
    if low is None and not signed:
        low = 0

    def convert(text: str) -> Any:
        value = conv(text)
        if name == "hidden":
            return type(value)(check_hidden(value, flag))
        for v in value if isinstance(value, (list, tuple)) else ():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if not math.isfinite(v) or (low is not None and v < low) or (high is not None and v > high):
                    span = f"in [{low:g}, {high:g}]" if low is not None and high is not None else (
                        f">= {low:g}" if low is not None else f"<= {high:g}" if high is not None else "finite")
                    raise InvalidInputError(f"{flag} {text}: each number must be {span}, got {v}")
        return value

    return convert


def _num(value: float) -> str:
    """A bound as written: ``4294967295`` (not ``4.29497e+09``), ``0.001``, ``1e+05``."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 and abs(value) >= 1e4 else f"{value:g}"


def _span(bounds: Range | None) -> str:
    """``"; range [1, 16384]"`` for the help of a flag with ``ranges``."""
    if bounds is None:
        return ""
    low, high = ("-inf" if bounds[0] is None else _num(bounds[0])), ("inf" if bounds[1] is None else _num(bounds[1]))
    return f"; range [{low}, {high}]"


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
    signed: Sequence[str] = (),
    ranges: Mapping[str, Range] | None = None,
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
        signed: number fields that may be negative; every other number flag must be ``>= 0``.
        ranges: ``(low, high)`` per field (either may be ``None``), checked when the flags are parsed.

    Every number flag must be finite (no ``nan``/``inf``) and, unless ``signed``, ``>= 0``; a field
    named ``hidden`` is bounded by :func:`inrkit.limits.check_hidden`. The config's own
    ``__post_init__`` (or the function) checks the finer ranges.
    Returns the names of the fields added.
    """
    flags, aliases, parsers = dict(flags or {}), dict(aliases or {}), dict(parsers or {})
    choices, helps, ranges = dict(choices or {}), dict(helps or {}), dict(ranges or {})
    for name in _params_names(source):  # bounds every command shares (docs/limits.md, "Command-line arguments")
        if name == "seed":  # what torch, NumPy and Python generators all accept
            ranges.setdefault(name, (0, MAX_SEED))
        elif name in ("omega0", "omega_hidden"):  # a new SIREN/FINER's initialisation divides by omega
            ranges.setdefault(name, (MIN_OMEGA, MAX_OMEGA))
        elif name in ("lr", "lr_final") or name.endswith("_lr"):
            ranges.setdefault(name, (0, MAX_LR))
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
        if kind == "list" and conv is not None:
            conv = _checked_list(conv, name, spellings[-1], name in signed, ranges.get(name))
        elif kind == "scalar" and conv in (int, float) and allowed is None:
            conv = _number(conv, spellings[-1], name in signed, ranges.get(name))
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
                            help=_help_with_default(text, default, ranges.get(name)))
    signed_flags = {s for n in names if n in signed for s in parser._option_string_actions
                    if parser._option_string_actions[s].dest == n}
    parser.set_defaults(**{_CONVERT: convert, _FIELDS: tuple(added | set(names)),
                           _SIGNED: tuple(sorted(set(parser.get_default(_SIGNED) or ()) | signed_flags))})
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
    from inrkit.utils import to_json  # NumPy and torch: not imported by --help (inrkit.cli.spec)

    data = dataclasses.asdict(typing.cast(Any, config)) if dataclasses.is_dataclass(config) else dict(config)
    return json.loads(to_json({k: v for k, v in data.items() if k not in drop}, indent=None))


# ------------------------------------------------------------------ flags
def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout (default: off)")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: pick automatically)")


def add_output(parser: argparse.ArgumentParser, help: str, suffixes: Sequence[str] = (), *,
               folder: bool = False, required: bool = True, dest: str = "output",
               flags: Sequence[str] = ("-o", "--output"), default: str | None = None) -> None:
    """Add the output flag and declare what it names, so :func:`check_outputs` checks it before any work.

    Args:
        parser: the subcommand's parser.
        help: help text.
        suffixes: the accepted file suffixes (lower case, e.g. ``(".png", ".gif")``); empty: any.
        folder: the output is a folder (created if missing), not a file.
        required: the flag must be given.
        dest: the namespace attribute.
        flags: the flag spellings.
        default: the value when the flag is not given (with ``required=False``).
    """
    parser.add_argument(*flags, dest=dest, required=required, default=default, help=help)
    declare_output(parser, dest, flags[-1], suffixes, folder=folder)


def declare_output(parser: argparse.ArgumentParser, dest: str, flag: str, suffixes: Sequence[str] = (), *,
                   folder: bool | None = False) -> None:
    """Declare an existing flag (``dest``) as an output that :func:`check_outputs` checks before any work."""
    declared = dict(parser.get_default(_OUTPUTS) or {})
    declared[dest] = (flag, tuple(s.lower() for s in suffixes), folder)
    parser.set_defaults(**{_OUTPUTS: declared})


def check_output(path: str | os.PathLike, flag: str = "--output", suffixes: Sequence[str] = (),
                 folder: bool | None = False) -> Path:
    """Refuse (:class:`InvalidInputError`) an output that cannot be written, before any work.

    ``suffixes``: accepted suffixes (empty: any); ``folder``: the output is a folder (``True``),
    a file (``False``) or either (``None``). Missing parent folders are allowed (the writers create
    them) when the nearest existing ancestor is a folder we can create files in; this is probed with
    a temporary file, so read-only file systems are caught too (also for root).
    """
    out = Path(path)
    text = os.fspath(path)
    if not text.strip():
        raise InvalidInputError(f"{flag}: empty path")
    if folder is False and suffixes and out.suffix.lower() not in suffixes:
        raise InvalidInputError(f"{flag} {text}: expected a {' or '.join(suffixes)} file, "
                                f"not {out.suffix or 'no suffix'!r}")
    if out.is_dir():
        if folder is False:
            raise InvalidInputError(f"{flag} {text}: is a folder, expected a file")
        where = out
    elif out.exists() or out.is_symlink():
        if folder:
            raise InvalidInputError(f"{flag} {text}: exists and is not a folder")
        where = out.parent
    else:
        where = out.parent
        while not where.exists() and where != where.parent:
            where = where.parent
    if not where.is_dir():
        raise InvalidInputError(f"{flag} {text}: {where} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=where, prefix=".inrkit-probe-"):
            pass
    except OSError as exc:
        raise InvalidInputError(f"{flag} {text}: cannot write in {where} ({exc.strerror or exc})") from None
    return out


def check_outputs(args: argparse.Namespace) -> None:
    """Check every output of a parsed command (:func:`add_output` declarations, and the dests in
    :data:`OUTPUT_DESTS` of commands that declare none) before its handler runs."""
    declared = dict(getattr(args, _OUTPUTS, None) or {})
    for dest in OUTPUT_DESTS:
        if dest not in declared and getattr(args, dest, None) is not None:
            flag = {"history_path": "--history", "checkpoint_path": "--checkpoint"}.get(dest, f"--{dest}")
            declared[dest] = (flag, (), None if dest == "output" else False)
    for dest, (flag, suffixes, folder) in declared.items():
        value = getattr(args, dest, None)
        if value is not None:
            check_output(value, flag, suffixes, folder)


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
    from inrkit.utils import to_json

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
