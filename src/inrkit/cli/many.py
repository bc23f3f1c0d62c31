"""``inrkit fit-many``: one model per signal of a dataset, in batched fits, in-process or on Ray; and the
helpers of the ``--many`` forms of ``encode`` and ``mesh`` (:func:`add_many`, :func:`emit_many`).

Flags come from :class:`inrkit.api.ModelSpec`, :class:`inrkit.train.FitConfig`,
:class:`inrkit.signals.SignalOptions` (as ``inrkit fit``) and :class:`inrkit.jobs.JobOptions`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inrkit.api import ARCH_CHOICES, WEIGHT_DTYPE_CHOICES, ModelSpec
from inrkit.cli.common import (
    _OUTPUTS,
    add_config,
    add_json_flag,
    add_output,
    build_config,
    check_output,
    declare_output,
    emit,
)
from inrkit.cli.core import FIT_CHOICES, FIT_RANGES, MODEL_RANGES, SIGNAL_PARSERS
from inrkit.cli.suggest import deprecate
from inrkit.errors import InvalidInputError
from inrkit.jobs import MAX_BATCH, JobOptions, ManyOptions, check_ray, expand_inputs, run_job
from inrkit.models import ACTIVATIONS, parse_hidden
from inrkit.runner import SUMMARY_JSON
from inrkit.signals import SignalOptions
from inrkit.train import FitConfig

# per-item files make no sense for a job: no history, checkpoint or resume flags (re-running resumes)
FIT_SKIP = ("history_path", "checkpoint_path", "checkpoint_every", "resume", "plot_path")


def _cmd_fit_many(args: argparse.Namespace) -> int:
    job = build_config(JobOptions, args)
    spec, config = build_config(ModelSpec, args), build_config(FitConfig, args)
    options = build_config(SignalOptions, args)
    expand_inputs(args.inputs)  # refuse a missing or unreadable input before any work
    if job.ray:
        check_ray()
    summary = run_job(args.inputs, args.output, spec, config, options, job, progress=config.progress and not args.json)
    return emit_many(summary, args.json)


def emit_many(summary: dict[str, Any], as_json: bool) -> int:
    """Print a run's summary (:mod:`inrkit.runner`; ``--json``: all of it, else the totals and how it ran) and,
    when inputs failed, one error line; exit 2 then."""
    path = Path(summary["outdir"]) / SUMMARY_JSON
    shown = summary if as_json else {"command": summary["command"], "outdir": summary["outdir"],
                                     **summary["totals"], **summary["run"], "summary": str(path)}
    emit(shown, as_json)
    totals = summary["totals"]
    if totals["failed"]:
        first = next(r for r in summary["inputs"] if r["status"] == "failed")
        print(f"inrkit: error: {totals['failed']} of {totals['inputs']} inputs failed (first: {first['name']}: "
              f"{first['error'][:300]}); see {path}", file=sys.stderr)
        return 2
    return 0


def add_many(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--many``/``--redo`` flags (:class:`inrkit.jobs.ManyOptions`) of a one-file command; its ``--output``
    may then be a folder (the command checks the single form's suffix itself, see :func:`check_single`)."""
    add_config(parser, ManyOptions)
    flag, suffixes, _ = parser.get_default(_OUTPUTS)["output"]
    declare_output(parser, "output", flag, suffixes, folder=None)
    parser.epilog = (f"--many: INPUT is a folder or a quoted glob of {what} files (a folder implies --many) and "
                     "-o an output folder: one output per input, resumable (re-running skips finished items), "
                     "summary.json/summary.csv there (see docs/many.md).")


def check_single(args: argparse.Namespace, parser_suffixes: tuple[str, ...]) -> None:
    """The single-file form: ``--redo`` needs ``--many``; ``--output`` must be a file with one of the suffixes."""
    if args.redo:
        raise InvalidInputError("--redo needs --many (or a folder INPUT)")
    check_output(args.output, "--output", parser_suffixes, folder=False)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("fit-many", help="fit one INR per signal of a dataset, in batches (in-process or Ray)")
    p.add_argument("inputs", nargs="+", metavar="INPUTS",
                   help="signal files, folders, globs ('crops/*.png') or series manifests")
    add_output(p, "output folder: NAME.safetensors per item, summary.json, summary.csv", folder=True)
    add_config(p, JobOptions, flags={"batch": "--stack"}, aliases={"batch": ["--batch"]},
               ranges={"batch": (1, MAX_BATCH)})
    deprecate(p, "--batch", "in the other commands --batch is --batch-size, points per step")
    add_config(p, ModelSpec, choices={"arch": ARCH_CHOICES, "activation": ACTIVATIONS,
                                      "weight_dtype": WEIGHT_DTYPE_CHOICES},
               parsers={"hidden": parse_hidden}, ranges=MODEL_RANGES)
    add_config(p, FitConfig, skip=FIT_SKIP, choices=FIT_CHOICES, ranges=FIT_RANGES, aliases={"steps": ["--iters"]})
    add_config(p, SignalOptions, parsers=SIGNAL_PARSERS)
    add_json_flag(p)
    p.set_defaults(handler=_cmd_fit_many)
