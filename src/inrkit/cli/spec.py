"""A static description of the ``inrkit`` argument parser (``parser.json``) and the light parser built from it.

The full parser (:func:`inrkit.cli.build_parser`) imports every command module, and with them torch
(seconds of CPU). :func:`inrkit.cli.main` first parses with :func:`light_parser`, built from
``parser.json`` with the standard library and :mod:`inrkit.cli.common` only: ``--help``, ``--version``
and every usage error are answered from it at once; only arguments it accepts go on to the full parser.

``parser.json`` is generated from the full parser by :func:`describe`: every command and subcommand,
positionals, flags and their aliases, nargs, choices, defaults, help texts and the number type and
range of each number flag. Regenerate it after changing a command, a flag, a help text or a registry::

    python -m inrkit.cli.spec            # writes src/inrkit/cli/parser.json

``tests/test_cli_fast.py`` fails while it differs from the full parser. A flag the light parser cannot
check (a list such as ``--hidden``) is read as text there and checked by the full parser.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

from inrkit.cli.common import ArgumentParser, _number

SPEC_PATH = Path(__file__).with_name("parser.json")
FORMAT = 1  # the layout of parser.json; a file of another layout is not used

_KINDS: tuple[tuple[type, str], ...] = (  # subclasses before their bases
    (argparse._HelpAction, "help"),
    (argparse._VersionAction, "version"),
    (argparse._StoreTrueAction, "store_true"),
    (argparse._StoreFalseAction, "store_false"),
    (argparse._StoreConstAction, "store_const"),
    (argparse._StoreAction, "store"),
    (argparse._SubParsersAction, "parsers"),
)


# ------------------------------------------------------------------ describe
def describe(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """``parser`` (and its subcommands) as JSON-ready data; :func:`light_parser` rebuilds it."""
    if parser.formatter_class is not argparse.HelpFormatter:
        raise TypeError(f"{parser.prog}: only argparse.HelpFormatter is described")
    index = {id(action): i for i, action in enumerate(parser._actions)}
    return {
        "prog": parser.prog, "usage": parser.usage, "description": parser.description, "epilog": parser.epilog,
        "allow_abbrev": parser.allow_abbrev,
        "actions": [_describe_action(parser, action) for action in parser._actions],
        "exclusive": [{"required": group.required, "actions": [index[id(a)] for a in group._group_actions]}
                      for group in parser._mutually_exclusive_groups],
    }


def _kind(action: argparse.Action) -> str:
    for cls, name in _KINDS:
        if isinstance(action, cls):
            return name
    raise TypeError(f"no light form of {type(action).__name__} ({'/'.join(action.option_strings) or action.dest})")


def _describe_action(parser: argparse.ArgumentParser, action: argparse.Action) -> dict[str, Any]:
    kind = _kind(action)
    container = getattr(action, "container", parser)  # the group the action was added to
    if container is not parser and container not in parser._mutually_exclusive_groups:
        if container not in (parser._positionals, parser._optionals):
            raise TypeError(f"{parser.prog}: argument groups are not described ({action.dest})")
    out: dict[str, Any] = {"kind": kind, "flags": list(action.option_strings), "dest": action.dest,
                           "help": action.help, "metavar": _jsonable(action.metavar)}
    if kind == "help":
        return out
    if kind == "version":
        return {**out, "version": getattr(action, "version", None)}
    out.update(required=action.required, default=_jsonable(action.default))
    if kind in ("store_true", "store_false", "store_const"):
        return {**out, "const": _jsonable(action.const)}
    if kind == "parsers":
        assert isinstance(action, argparse._SubParsersAction)
        names = {id(p): [] for p in action.choices.values()}  # type: dict[int, list[str]]
        for name, sub in action.choices.items():
            names[id(sub)].append(name)
        helps = {pseudo.dest: pseudo.help for pseudo in action._choices_actions}  # the commands listed in --help
        commands = []
        for name, sub in action.choices.items():
            if names[id(sub)][0] == name:
                commands.append({"name": name, "aliases": names[id(sub)][1:], "listed": name in helps,
                                 "help": helps.get(name), "parser": describe(sub)})
        return {**out, "commands": commands}
    return {**out, "nargs": action.nargs, "const": _jsonable(action.const),
            "choices": None if action.choices is None else [_jsonable(c) for c in action.choices],
            "type": _describe_type(action.type)}


def _describe_type(convert: Any) -> dict[str, Any] | None:
    """``{"name": "int"|"float", "range": [low, high]}`` for the number converters, else None (text)."""
    if convert is None or convert is str:
        return None
    if convert in (int, float):
        return {"name": convert.__name__, "range": None}
    cells = dict(zip(getattr(convert, "__code__", None) and convert.__code__.co_freevars or (),
                     (c.cell_contents for c in getattr(convert, "__closure__", None) or ())))
    if convert.__qualname__.startswith(_number.__qualname__) and cells.get("tp") in (int, float):
        return {"name": cells["tp"].__name__, "range": [cells.get("low"), cells.get("high")]}
    return None  # another converter: the full parser checks the text


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data: tuples as lists, anything else that JSON cannot hold as its ``str``."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return str(value)


def full_spec() -> dict[str, Any]:
    """The description of :func:`inrkit.cli.build_parser` (imports every command module)."""
    from inrkit.cli import build_parser

    return {"format": FORMAT, "parser": describe(build_parser())}


def dumps(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=1, ensure_ascii=False) + "\n"


def write(path: Path = SPEC_PATH) -> Path:
    """Write the description of the full parser to ``path`` (``parser.json`` beside this module)."""
    path.write_text(dumps(full_spec()), encoding="utf-8")
    return path


# ------------------------------------------------------------------ rebuild
@functools.lru_cache(maxsize=1)
def load(path: Path = SPEC_PATH) -> dict[str, Any] | None:
    """The stored description, or None when ``parser.json`` is missing, unreadable or of another layout."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) and spec.get("format") == FORMAT else None


def light_parser(spec: dict[str, Any] | None = None) -> argparse.ArgumentParser | None:
    """The parser described by ``spec`` (default: ``parser.json``), or None without a usable description."""
    spec = load() if spec is None else spec
    if spec is None:
        return None
    data = spec["parser"]
    parser = ArgumentParser(prog=data["prog"], usage=data["usage"], description=data["description"],
                            epilog=data["epilog"], add_help=False, allow_abbrev=data["allow_abbrev"])
    _fill(parser, data)
    return parser


def _fill(parser: argparse.ArgumentParser, data: dict[str, Any]) -> None:
    groups = {}
    for group in data["exclusive"]:
        made = parser.add_mutually_exclusive_group(required=group["required"])
        groups.update({i: made for i in group["actions"]})
    for i, action in enumerate(data["actions"]):
        target: Any = groups.get(i, parser)
        kind, flags = action["kind"], action["flags"]
        common = {"help": action["help"]}
        if kind == "help":
            target.add_argument(*flags, action="help", **common)
        elif kind == "version":
            target.add_argument(*flags, action="version", version=action["version"], **common)
        elif kind in ("store_true", "store_false", "store_const"):
            extra = {"const": action["const"]} if kind == "store_const" else {}
            target.add_argument(*flags, dest=action["dest"], action=kind, default=action["default"],
                                required=action["required"], **extra, **common)
        elif kind == "parsers":
            subs = parser.add_subparsers(dest=action["dest"], metavar=action["metavar"], required=action["required"],
                                         **common)
            for command in action["commands"]:
                sub = command["parser"]
                child = subs.add_parser(command["name"], aliases=command["aliases"],
                                        **({"help": command["help"]} if command["listed"] else {}),
                                        prog=sub["prog"], usage=sub["usage"], description=sub["description"],
                                        epilog=sub["epilog"], add_help=False, allow_abbrev=sub["allow_abbrev"])
                _fill(child, sub)
        else:
            names = {"dest": action["dest"], "required": action["required"]} if flags else {}
            metavar = action["metavar"]
            target.add_argument(*(flags or [action["dest"]]), **names, nargs=action["nargs"],
                                const=action["const"], default=action["default"], type=_light_type(action["type"]),
                                choices=action["choices"],
                                metavar=tuple(metavar) if isinstance(metavar, list) else metavar, **common)


def _light_type(described: dict[str, Any] | None) -> Any:
    if described is None:
        return None
    tp = int if described["name"] == "int" else float
    if described["range"] is None:
        return tp
    return _number(tp, "", True, tuple(described["range"]))


def main(argv: list[str] | None = None) -> int:
    """``python -m inrkit.cli.spec [PATH]``: write the description of the full parser."""
    args = sys.argv[1:] if argv is None else argv
    print(write(Path(args[0]) if args else SPEC_PATH))
    return 0


if __name__ == "__main__":
    sys.exit(main())
