"""Test helper: every leaf command of the ``inrkit`` parser."""
from __future__ import annotations

import argparse
from typing import Iterator

from inrkit.cli import build_parser


def leaf_commands(parser: argparse.ArgumentParser | None = None,
                  path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``(path, parser)`` of every leaf command, e.g. ``(("synth", "scene"), parser)``."""
    parser = build_parser() if parser is None else parser
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs and path:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaf_commands(sub, (*path, name))
