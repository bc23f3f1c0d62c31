"""``inrkit fit-many``: one model per signal of a dataset, in batched fits, in-process or on Ray.

Flags come from :class:`inrkit.api.ModelSpec`, :class:`inrkit.train.FitConfig`,
:class:`inrkit.signals.SignalOptions` (as ``inrkit fit``) and :class:`inrkit.jobs.JobOptions`.
"""
from __future__ import annotations

import argparse
import sys

from inrkit.api import ModelSpec
from inrkit.cli.common import add_config, add_json_flag, add_output, build_config, choices_of, emit
from inrkit.cli.core import FIT_CHOICES, SIGNAL_PARSERS
from inrkit.jobs import MAX_BATCH, JobOptions, check_ray, expand_inputs, run_job
from inrkit.models import ARCHITECTURES, parse_hidden
from inrkit.signals import SignalOptions
from inrkit.train import FitConfig

# per-item files make no sense for a job: no history, checkpoint or resume flags (re-running resumes)
FIT_SKIP = ("history_path", "checkpoint_path", "checkpoint_every", "resume")


def _cmd_fit_many(args: argparse.Namespace) -> int:
    job = build_config(JobOptions, args)
    spec, config = build_config(ModelSpec, args), build_config(FitConfig, args)
    options = build_config(SignalOptions, args)
    expand_inputs(args.inputs)  # refuse a missing or unreadable input before any work
    if job.ray:
        check_ray()
    summary = run_job(args.inputs, args.output, spec, config, options, job, progress=config.progress and not args.json)
    shown = summary if args.json else {k: v for k, v in summary.items() if k != "rows"}
    emit(shown, args.json)
    if summary["failed"]:
        first = next(r for r in summary["rows"] if r["status"] == "failed")
        print(f"inrkit: error: {summary['failed']} of {summary['items']} items failed (first: {first['item']}: "
              f"{first['error'][:300]}); see {summary['summary_json']}", file=sys.stderr)
        return 2
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("fit-many", help="fit one INR per signal of a dataset, in batches (in-process or Ray)")
    p.add_argument("inputs", nargs="+", metavar="INPUTS",
                   help="signal files, folders, globs ('crops/*.png') or series manifests")
    add_output(p, "output folder: NAME.safetensors per item, summary.json, summary.csv", folder=True)
    add_config(p, JobOptions, ranges={"batch": (1, MAX_BATCH)})
    add_config(p, ModelSpec, choices={"arch": choices_of(ARCHITECTURES)}, parsers={"hidden": parse_hidden})
    add_config(p, FitConfig, skip=FIT_SKIP, choices=FIT_CHOICES, aliases={"steps": ["--iters"]})
    add_config(p, SignalOptions, parsers=SIGNAL_PARSERS)
    add_json_flag(p)
    p.set_defaults(handler=_cmd_fit_many)
