"""``inrkit adapt`` (AIRe schedules) and ``inrkit prune`` (neuron pruning of a model file).

Flags and defaults come from :func:`inrkit.adapt.adapt_file` and :func:`inrkit.prune.prune_file`;
``--method`` choices from :data:`inrkit.prune.CRITERIA`.
"""
from __future__ import annotations

import argparse

from inrkit.cli.common import add_config, add_json_flag, add_output, build_config, choices_of, emit

ADAPT_HELP = {
    "preset": "built-in schedule",
    "config": "schedule file (.toml or .json); overrides --preset",
    "scale": "multiply every stage's steps (e.g. 0.1 on a CPU)",
    "seed": "seed (none: the schedule's)",
    "test_fraction": "share of samples held out for the metrics",
    "device": "cpu, cuda, cuda:1, mps (none: pick automatically)",
    "progress": "show a progress bar",
}
PRUNE_HELP = {
    "method": "criterion (l1 is AIRe's; id: interpolative decomposition)",
    "layers": "hidden layers to prune, e.g. 0,1 (none: all)",
    "keep": "fraction (<=1) or number of neurons kept per layer (none with no --eps: 0.5)",
    "eps": "drop neurons scoring <= eps (ID: relative tolerance)",
    "signal_path": "signal file, to measure PSNR and fine-tune",
    "finetune": "fine-tuning steps after pruning (needs --signal)",
    "lr": "fine-tuning learning rate",
    "points": "domain points for ID pruning",
    "seed": "seed of the criterion and fine-tuning",
    "device": "cpu, cuda, cuda:1, mps (none: pick automatically)",
    "progress": "show a progress bar",
}


def _adapt(args: argparse.Namespace) -> int:
    from inrkit.adapt import adapt_file

    return emit(adapt_file(args.input, args.output, **build_config(adapt_file, args)), args.json)


def _prune(args: argparse.Namespace) -> int:
    from inrkit.prune.api import prune_file

    return emit(prune_file(args.model, args.output, **build_config(prune_file, args)), args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``adapt`` and ``prune``."""
    from inrkit.adapt import adapt_file, preset_names
    from inrkit.prune import CRITERIA
    from inrkit.prune.api import prune_file

    p = subparsers.add_parser("adapt", help="fit a signal with an AIRe schedule (densify, TWD, prune)")
    p.add_argument("input", help="signal file (image, volume, mesh)")
    add_output(p, "output model file (.safetensors)", (".safetensors",))
    add_config(p, adapt_file, choices={"preset": preset_names()}, helps=ADAPT_HELP,
               ranges={"test_fraction": (0.0, 0.99)})
    add_json_flag(p)
    p.set_defaults(handler=_adapt)

    p = subparsers.add_parser("prune", help="remove neurons from a model file")
    p.add_argument("model", help="model file (.safetensors or .npz)")
    add_output(p, "output model file (.safetensors)", (".safetensors",))
    add_config(p, prune_file, choices={"method": choices_of(CRITERIA)}, helps=PRUNE_HELP,
               flags={"layers": "--layer", "signal_path": "--signal"}, aliases={"finetune": ["--retrain"]},
               exclusive=[("keep", "eps")])
    add_json_flag(p)
    p.set_defaults(handler=_prune)
