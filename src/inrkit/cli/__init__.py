"""The ``inrkit`` command: flat subcommands, each a thin wrapper over one library function.

Every module in this package may define ``register(subparsers)`` (top-level commands) and
``register_synth(subparsers)`` (kinds of ``inrkit synth``); modules are discovered at start.
Every command also gets ``--threads N`` (:func:`default_threads`), applied before its handler runs.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import threading
import warnings
from typing import Any, Iterator, Sequence

from threadpoolctl import threadpool_limits

from inrkit import _program
from inrkit.cli.common import ArgumentParser, _number, check_outputs, shorten
from inrkit.errors import InrkitError
from inrkit.limits import MAX_THREADS

THREADS_ENV = "INRKIT_THREADS"  # environment default of --threads (then OMP_NUM_THREADS)
THREADS_CAP = 8  # the default uses at most this many threads (README "Threads and progress")
NO_PROGRESS_ENV = "INRKIT_NO_PROGRESS"  # set while a --json command runs (inrkit.utils.NO_PROGRESS_ENV)


def _command_modules() -> list:
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in ("common", "spec", "suggest") and not info.name.startswith("_"):
            modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    return modules


def default_threads() -> int:
    """The default of ``--threads``: ``$INRKIT_THREADS``, else ``$OMP_NUM_THREADS``, else
    ``min(usable cores, 8)`` (at least 1).

    Measured on an idle 2-core machine (docs/speed.md, "Threads"): one ``fit`` (SIREN 64x3, 256x256
    crop) took 0.056-0.059 s per step on two threads and 0.095-0.103 s on one (compiled step; eager
    0.075-0.084 and 0.127-0.137 s), as fast as plain PyTorch's own default (all cores). With other work
    running, two threads lose (README "Threads and progress"): pass ``--threads 1`` there. The cap of 8
    is not measured (2 cores only).
    """
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        text = os.environ.get(name, "").strip()
        if text.isdigit() and 1 <= int(text) <= MAX_THREADS:
            return int(text)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, THREADS_CAP))


def set_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` and, once per process, the inter-op threads."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or parallel work already started (a second in-process command)
        pass


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads`` to ``parser`` and to every command below it."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        for sub in action.choices.values():
            _add_threads(sub)
    if not subs and "--threads" not in parser._option_string_actions:
        parser.add_argument("--threads", type=_number(int, "--threads", False, (1, MAX_THREADS)), default=None,
                            metavar="N", help="CPU threads of PyTorch (intra- and inter-op) and of NumPy's BLAS "
                            f"(default: ${THREADS_ENV}, else $OMP_NUM_THREADS, else min(cores, "
                            f"{THREADS_CAP}); range [1, {MAX_THREADS}])")


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
    _add_threads(parser)
    return parser


def _one_line(text: object) -> str:
    return shorten(text)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show inrkit's own warnings as one line each, ``inrkit: warning: ...``, once per message."""
    from inrkit.errors import InrkitWarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        if issubclass(category, InrkitWarning):
            print(f"inrkit: warning: {_one_line(message)}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        previous = warnings.showwarning
        warnings.simplefilter("default", InrkitWarning)
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one command; user errors print one line on stderr and exit 2.

    The arguments are parsed and every output checked (:func:`inrkit.cli.common.check_outputs`)
    before the command's handler runs, so a bad argument never costs the command's work.
    ``--help``, ``--version`` and usage errors are answered by the light parser
    (:func:`inrkit.cli.spec.light_parser`) before any command module (and torch) is imported.
    Ctrl-C at any moment prints ``inrkit: interrupted`` and exits 130.
    """
    try:
        _program.release()
        return _main(argv)
    except KeyboardInterrupt:
        if argv is None and threading.current_thread() is threading.main_thread():  # the program: exiting now
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C adds no traceback
        print("inrkit: interrupted", file=sys.stderr)
        return 130


def _light_parse(argv: Sequence[str] | None) -> int | None:
    """Parse with the light parser: the exit code of ``--help``, ``--version`` or a usage error, else None.

    Skipped once torch is imported (an in-process caller): the full parser then costs little, and it
    also knows codecs and criteria registered at run time.
    """
    if "torch" in sys.modules:
        return None
    from inrkit.cli.spec import light_parser

    parser = light_parser()
    if parser is None:
        return None
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return None


def _main(argv: Sequence[str] | None) -> int:
    code = _light_parse(argv)
    if code is not None:
        return code
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (one line, exit 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    quiet = bool(getattr(args, "json", False))  # --json: exactly one JSON object, no progress bar on any command
    hidden = os.environ.get(NO_PROGRESS_ENV)
    if quiet:
        args.progress = False
        os.environ[NO_PROGRESS_ENV] = "1"  # also the bars shown on a terminal only (inrkit.utils.terminal_bar)
    previous = _catch_sigterm()
    threads = _current_threads()
    try:
        check_outputs(args)
        count = getattr(args, "threads", None) or default_threads()
        set_threads(count)
        with _warnings_as_lines(), threadpool_limits(count, user_api="blas"):  # NumPy's BLAS too, restored after
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
    except Exception as exc:  # an unexpected failure: one line unless INRKIT_DEBUG is set
        return _internal(exc)
    finally:
        if quiet and hidden is None:
            os.environ.pop(NO_PROGRESS_ENV, None)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if threads is not None:  # an in-process caller (tests, notebooks) keeps its own setting
            _restore_threads(threads)
    return int(result or 0)


def _current_threads() -> int | None:
    """PyTorch's intra-op threads when torch is already imported (else None: nothing to restore)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def _restore_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


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
