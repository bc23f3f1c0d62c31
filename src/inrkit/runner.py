"""The runner of every command that writes one output per input: ``fit-many``, ``encode --many``,
``mesh --many`` and ``meta-encode``.

:class:`Runner` takes the inputs (:class:`Item`), skips those whose output a previous run finished
(resume), records one row per input as the command finishes it, shows a progress bar, and writes one
summary in one schema, ``OUTDIR/summary.json`` (and the same rows as ``summary.csv``), atomically after
every batch and at the end (an interrupt included)::

    {"command": "fit-many", "outdir": "...",
     "settings": {...},            # what decides the outputs; a rerun with other settings redoes everything
     "run": {...},                 # how this run went about it (stack size, Ray, batched...), not compared
     "inputs": [{"name", "input", "status", "output", "seconds", "bytes", "sha256", "error",
                 "psnr", ...the command's own numbers}],
     "totals": {"inputs", "ok", "skipped", "failed", "unfinished", "seconds", "inputs_per_s",
                "work_seconds", "bytes", "raw_bytes", "ratio", "mean_psnr", "min_psnr"},
     "environment": {...}}         # inrkit.utils.run_environment()

``status`` is ``ok`` (done by this run), ``skipped`` (done by an earlier run, its row carried over) or
``failed`` (``error`` says why; the other inputs go on). The command writes each output atomically
(a temporary file, then a rename), so an interrupted run leaves no half-written output.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from inrkit.errors import InrkitError
from inrkit.limits import MAX_JSON_BYTES, parse_json
from inrkit.utils import atomic_write, run_environment, to_json, write_json

SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"
SUMMARY_KEYS = ("command", "outdir", "settings", "run", "inputs", "totals", "environment")
"""The keys of every summary."""
COLUMNS = ("name", "input", "status", "output", "seconds", "bytes", "psnr", "error", "sha256")
"""The first columns of ``summary.csv`` (the command's own numbers follow, sorted)."""
STATUSES = ("ok", "skipped", "failed")


@dataclass(frozen=True)
class Item:
    """One input of a run: its name (the output's stem), source path and reader options."""

    name: str
    source: str
    options: tuple[tuple[str, Any], ...] = ()
    group: Any = None  # a cheap shape key (items of one batch share it)


Done = Callable[[Item, "dict[str, Any] | None"], "Path | None"]
"""``done(item, row)``: the finished output of ``item``, or ``None`` to process it; ``row`` is its row in the
previous summary (``None`` when there is none, or the previous run had other settings)."""


def sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unchanged_output(validate: Callable[[Path], None]) -> Done:
    """The usual resume rule: the previous row is ``ok`` or ``skipped`` for the same input, its output is still
    the file it wrote (SHA-256) and ``validate(output)`` does not raise."""
    def done(item: Item, row: dict[str, Any] | None) -> Path | None:
        if not row or row.get("status") not in ("ok", "skipped") or row.get("input") != item.source:
            return None
        out = row.get("output")
        if not isinstance(out, str) or not Path(out).is_file() or row.get("sha256") != sha256(out):
            return None
        try:
            validate(Path(out))
        except Exception:
            return None
        return Path(out)

    return done


def one_line(exc: BaseException) -> str:
    """An exception as one line for a ``failed`` row (the type named unless it is an inrkit error)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, InrkitError) else f"{type(exc).__name__}: {text}"


def read_summary(outdir: str | os.PathLike) -> dict[str, Any]:
    """The summary a previous run left in ``outdir`` (``{}`` when there is none or it does not parse)."""
    path = Path(outdir) / SUMMARY_JSON
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON_BYTES:
            return {}
        data = parse_json(path.read_bytes(), str(path))
        return data if isinstance(data, dict) else {}
    except (InrkitError, OSError):
        return {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class Runner:
    """One run of a one-output-per-input command into ``outdir``.

    Args:
        command: the command's name (``fit-many``, ``encode``, ``mesh``, ``meta-encode``).
        items: the inputs, in order.
        outdir: the output folder (created).
        settings: what decides the outputs (JSON); an earlier run's rows count only when its settings are equal.
        done: the resume rule (:data:`Done`); an input it calls finished is ``skipped``.
        redo: process every input again.
        progress: a progress bar on stderr (when it is a terminal).
        run: how the run goes about it (recorded, not compared); :meth:`close` may add to it.

    Use :attr:`todo` (the inputs left), :meth:`record` per finished input, :meth:`save` after a batch, and
    :meth:`close` at the end (also on an interrupt): it writes the final summary and returns it.
    """

    def __init__(self, command: str, items: Sequence[Item], outdir: str | os.PathLike, settings: dict[str, Any],
                 done: Done, *, redo: bool = False, progress: bool = False, run: dict[str, Any] | None = None) -> None:
        from tqdm.auto import tqdm

        self.command, self.items, self.out = command, list(items), Path(outdir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings = json.loads(to_json(settings, indent=None))
        self.run = dict(run or {})
        self.environment = run_environment()
        previous = read_summary(self.out)
        same = previous.get("command") == command and previous.get("settings") == self.settings
        old = {r["name"]: r for r in (previous.get("inputs") or []) if same and isinstance(r, dict)
               and isinstance(r.get("name"), str)}
        self.rows: dict[str, dict[str, Any]] = {}
        self.todo: list[Item] = []
        for item in self.items:
            row = old.get(item.name)
            finished = None if redo else done(item, row)
            if finished is None:
                self.todo.append(item)
            else:  # the earlier row, or (without one) what the output file says
                self.rows[item.name] = ({**row, "status": "skipped", "error": ""} if row
                                        else self._row(item, "skipped", finished, "", None, {}))
        self.start = time.perf_counter()
        self.bar = tqdm(total=len(self.items), initial=len(self.items) - len(self.todo), desc=command, unit="input",
                        file=sys.stderr, disable=not (progress and sys.stderr.isatty()), dynamic_ncols=True)

    def _row(self, item: Item, status: str, output: Path | None, error: str, seconds: float | None,
             numbers: dict[str, Any]) -> dict[str, Any]:
        written = output if status != "failed" and output is not None and output.is_file() else None
        row: dict[str, Any] = {"name": item.name, "input": item.source, "status": status,
                               "output": str(written) if written else None,
                               "seconds": None if seconds is None else round(seconds, 4),
                               "bytes": written.stat().st_size if written else None,
                               "sha256": sha256(written) if written else None, "error": error}
        row.update(numbers)
        row["psnr"] = _number(row.get("psnr"))
        return row

    def record(self, item: Item, output: Path | None = None, *, error: str = "", seconds: float | None = None,
               **numbers: Any) -> dict[str, Any]:
        """The row of a finished input: ``ok`` with its ``output`` (written), or ``failed`` with ``error``;
        ``numbers`` are the command's own (``psnr``, ``steps``...). Returns the row."""
        status = "failed" if error or output is None else "ok"
        row = self._row(item, status, output, error, seconds, numbers)
        self.rows[item.name] = row
        self.bar.update(1)
        counts = self._counts()
        rate = (counts["ok"] + counts["failed"]) / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix(done=counts["ok"], failed=counts["failed"], rate=f"{rate:.2f}/s")
        return row

    def _counts(self) -> dict[str, int]:
        status = [r["status"] for r in self.rows.values()]
        return {s: status.count(s) for s in STATUSES}

    def summary(self) -> dict[str, Any]:
        """The summary now (see the module notes; its keys are :data:`SUMMARY_KEYS`)."""
        rows = [self.rows[i.name] for i in self.items if i.name in self.rows]
        values = (self.command, str(self.out), self.settings, self.run, rows, self._totals(rows), self.environment)
        return dict(zip(SUMMARY_KEYS, values))

    def _totals(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        counts = self._counts()
        seconds = time.perf_counter() - self.start
        worked = counts["ok"] + counts["failed"]
        kept = [r for r in rows if r["status"] != "failed"]
        psnrs = [r["psnr"] for r in kept if r.get("psnr") is not None]
        size = sum(int(r["bytes"]) for r in kept if r.get("bytes"))
        raw = [r.get("raw_bytes") for r in kept]
        known = [int(v) for v in raw if isinstance(v, int)]
        raw_total = sum(known) if kept and len(known) == len(raw) else None
        return {"inputs": len(self.items), **counts, "unfinished": len(self.items) - len(rows),
                "seconds": round(seconds, 3),
                "inputs_per_s": round(worked / seconds, 4) if seconds > 0 and worked else None,
                "work_seconds": round(sum(r["seconds"] or 0.0 for r in rows if r["status"] == "ok"), 4),
                "bytes": size, "raw_bytes": raw_total,
                "ratio": round(size / raw_total, 4) if raw_total else None,
                "mean_psnr": sum(psnrs) / len(psnrs) if psnrs else None, "min_psnr": min(psnrs) if psnrs else None}

    def save(self) -> dict[str, Any]:
        """Write ``summary.json`` and ``summary.csv`` now (atomically); returns the summary."""
        summary = self.summary()
        write_json(self.out / SUMMARY_JSON, summary)
        extra = sorted({k for r in summary["inputs"] for k in r} - set(COLUMNS))
        columns = [*COLUMNS, *extra]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in summary["inputs"]:
            writer.writerow({k: "" if row.get(k) is None else _cell(row[k]) for k in columns})
        with atomic_write(self.out / SUMMARY_CSV, "w") as handle:
            handle.write(text.getvalue())
        return summary

    def close(self, **run: Any) -> dict[str, Any]:
        """Add ``run`` to the run's record, write the final summary, close the bar; returns the summary."""
        self.run.update(run)
        self.bar.close()
        return self.save()


def _cell(value: Any) -> Any:
    """A CSV cell: lists and objects as compact JSON."""
    return to_json(value, indent=None) if isinstance(value, (list, dict)) else value


__all__ = ["COLUMNS", "SUMMARY_CSV", "SUMMARY_JSON", "SUMMARY_KEYS", "Done", "Item", "Runner", "one_line",
           "read_summary", "sha256", "unchanged_output"]
