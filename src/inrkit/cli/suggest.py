"""Usage errors that suggest what was meant: ``--hiden`` -> "did you mean --hidden?", ``--arch gird`` ->
"did you mean grid?", ``inrkit fitt`` -> "did you mean fit?".

:class:`SuggestingParser` is the base of :class:`inrkit.cli.common.ArgumentParser`, so both the full
parser and the light one built from ``parser.json`` (:mod:`inrkit.cli.spec`) suggest alike. Standard
library only: it runs before anything heavy is imported.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any, Iterable, Sequence

CUTOFF = 0.6  # difflib similarity a suggestion needs (its default)


def close_match(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to ``word`` (difflib), or None when none is close."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=CUTOFF)
    return found[0] if found else None


class SuggestingParser(argparse.ArgumentParser):
    """An argument parser whose errors for an unknown flag, choice or command name the closest known one.

    An unknown flag is reported by the command's own parser (``inrkit fit: error: unrecognized
    arguments: --hiden; did you mean --hidden?``), also when a missing required argument is
    reported first (a misspelt ``--outptu`` leaves ``--output`` missing).
    """

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: Any = None) -> Any:
        self._seen_args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            leaf = self._leaf(parsed)
            leaf.error(f"unrecognized arguments: {' '.join(extras)}{leaf.flag_hint(extras)}")
        return parsed

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            allowed = ", ".join(map(repr, action.choices))
            match = close_match(str(value), [str(c) for c in action.choices])
            hint = f"; did you mean {match}?" if match else ""
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from {allowed}){hint}")

    def with_hints(self, message: str) -> str:
        """``message`` and, for a missing required argument, the unknown flags given and their suggestion."""
        if message.startswith("the following arguments are required"):
            unknown = [t for t in getattr(self, "_seen_args", ()) if self._unknown_flag(t)]
            if unknown:
                message = f"{message}; unrecognized arguments: {' '.join(unknown)}{self.flag_hint(unknown)}"
        return message

    def flag_hint(self, tokens: Sequence[str]) -> str:
        """``"; did you mean --hidden?"`` for the unknown flags among ``tokens`` that resemble one of ours."""
        known = [s for s in self._option_string_actions if s.startswith("--")]
        pairs = []
        for token in tokens:
            if self._unknown_flag(token):
                key = token.split("=", 1)[0]
                match = close_match(key, known)
                if match:
                    pairs.append((key, match))
        if not pairs:
            return ""
        if len(pairs) == 1:
            return f"; did you mean {pairs[0][1]}?"
        return "; did you mean " + ", ".join(f"{m} for {k}" for k, m in pairs) + "?"

    def _unknown_flag(self, token: str) -> bool:
        """``token`` looks like a flag (not a negative number) that this parser does not know, also as a prefix."""
        if len(token) < 2 or token[0] not in self.prefix_chars or token == "--":
            return False
        if token[1].isdigit() or token[1] == "." or token[1:].lower().startswith(("inf", "nan")):
            return False
        key = token.split("=", 1)[0]
        return not any(s.startswith(key) for s in self._option_string_actions)

    def _leaf(self, namespace: argparse.Namespace) -> SuggestingParser:
        """The (sub)command parser that ``namespace`` was parsed by."""
        parser: argparse.ArgumentParser = self
        while True:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            name = getattr(namespace, subs[0].dest, None) if subs else None
            if not subs or name not in subs[0].choices:
                return parser if isinstance(parser, SuggestingParser) else self
            parser = subs[0].choices[name]


class _WarnedAlias(argparse._StoreAction):
    """A stored flag whose old spellings print a one-line deprecation warning when used."""

    old: tuple[str, ...] = ()
    note = ""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string in self.old:
            command = parser.prog.split(" ", 1)[-1]
            print(f"inrkit: warning: {option_string} is deprecated in {command}, use {self.option_strings[0]}"
                  f"{f' ({self.note})' if self.note else ''}", file=sys.stderr)
        super().__call__(parser, namespace, values, option_string)


def deprecate(parser: argparse.ArgumentParser, old: str, note: str = "") -> None:
    """Make ``old``, an alias of a stored flag of ``parser``, print a deprecation warning when used."""
    action = parser._option_string_actions[old]
    if type(action) is not argparse._StoreAction or old == action.option_strings[0]:
        raise TypeError(f"{old}: only the alias of a stored flag can be deprecated")
    action.__class__ = _WarnedAlias
    assert isinstance(action, _WarnedAlias)
    action.old, action.note = (*action.old, old), note
    action.help = f"{action.help} ({old}: deprecated spelling)" if action.help else f"{old}: deprecated spelling"
