"""Ctrl-C while the ``inrkit`` command starts up: one line, ``inrkit: interrupted``, and exit 130.

Imported first by ``inrkit/__init__.py``. Only when the running program is the ``inrkit`` command
(its console script or ``python -m inrkit``) does it set a SIGINT handler that exits at once, for the
imports before :func:`inrkit.cli.main` runs; ``main`` then hands SIGINT back to Python
(:func:`release`) and turns ``KeyboardInterrupt`` into the same line. A library import is unaffected.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

SCRIPT_NAMES = ("inrkit", "inrkit.exe", "inrkit-script.py")


def _interrupted(signum: int, frame: Any) -> None:
    os.write(2, b"inrkit: interrupted\n")
    os._exit(130)


def is_program() -> bool:
    """The running program is the ``inrkit`` command (not a library user or a test)."""
    path = str(getattr(sys.modules.get("__main__"), "__file__", None) or "")
    if os.path.basename(path) in SCRIPT_NAMES or path.endswith(os.path.join("inrkit", "__main__.py")):
        return True
    argv = list(getattr(sys, "orig_argv", ()))  # python -m inrkit: the package is imported before __main__ runs
    return "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "inrkit"


def release() -> None:
    """SIGINT raises ``KeyboardInterrupt`` again (so atomic writers remove their temporary files)."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


if is_program() and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _interrupted)
