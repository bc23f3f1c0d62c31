"""The ``inrkit`` command: flat subcommands, each a thin wrapper over one library function.

Every module in this package may define ``register(subparsers)`` (top-level commands) and
``register_synth(subparsers)`` (kinds of ``inrkit synth``); modules are discovered at start.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading
from typing import Any, Sequence

from inrkit.cli.common import ArgumentParser, check_outputs
from inrkit.errors import InrkitError


def _command_modules() -> list:
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in ("common",) and not info.name.startswith("_"):
            modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every discovered command."""
    from inrkit import __version__

    parser = ArgumentParser(prog="inrkit", description="Efficient implicit neural representations.")
    parser.add_argument("--version", action="version", version=f"inrkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    modules = _command_modules()
    for module in modules:
        if hasattr(module, "register"):
            module.register(commands)
    synth = commands.add_parser("synth", help="generate synthetic and simulated signals")
    kinds = synth.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    for module in modules:
        if hasattr(module, "register_synth"):
            module.register_synth(kinds)
    return parser


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one command; user errors print one line on stderr and exit 2.

    The arguments are parsed and every output checked (:func:`inrkit.cli.common.check_outputs`)
    before the command's handler runs, so a bad argument never costs the command's work.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (one line, exit 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    previous = _catch_sigterm()
    try:
        check_outputs(args)
        result = args.handler(args)
    except _Terminated:
        print("inrkit: terminated", file=sys.stderr)
        return 143
    except InrkitError as exc:
        print(f"inrkit: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"inrkit: error: {exc.filename or _one_line(exc)}: no such file", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the system refused (permission, read-only, disk full, not a folder)
        if exc.filename is None and not isinstance(exc, PermissionError):
            return _internal(exc)
        print(f"inrkit: error: {exc.filename or ''}: {exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("inrkit: error: not enough memory for this input and these arguments", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inrkit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure: one line unless INRKIT_DEBUG is set
        return _internal(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(result or 0)


class _Terminated(BaseException):
    """SIGTERM turned into an exception, so atomic writers remove their temp files on the way out."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated()


def _catch_sigterm() -> Any:
    """Install the SIGTERM handler (main thread only); returns the previous handler, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _internal(exc: BaseException) -> int:
    """Report a bug (exit 1): one line, or the traceback with ``INRKIT_DEBUG`` set."""
    if os.environ.get("INRKIT_DEBUG"):
        raise exc
    print(f"inrkit: internal error: {type(exc).__name__}: {_one_line(exc)} (set INRKIT_DEBUG=1 for a traceback)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
