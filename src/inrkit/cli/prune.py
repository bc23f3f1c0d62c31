"""``inrkit adapt`` (AIRe schedules) and ``inrkit prune`` (neuron pruning of a model file).

Flags and defaults come from :func:`inrkit.adapt.adapt_file`, :class:`inrkit.prune.PruneConfig` and
:func:`inrkit.prune.prune_file`;
``--method`` choices from :data:`inrkit.prune.CRITERIA`.
"""
from __future__ import annotations

import argparse
import sys

from inrkit.cli.common import add_config, add_json_flag, add_output, build_config, choices_of, emit, parse_crop

ADAPT_HELP = {
    "preset": "built-in schedule",
    "config": "schedule file (.toml or .json); overrides --preset",
    "scale": "multiply every stage's steps (e.g. 0.1 on a CPU)",
    "seed": "seed (none: the schedule's)",
    "test_fraction": "share of samples held out for the metrics",
    "device": "cpu, cuda, cuda:1, mps (none: pick automatically)",
    "progress": "show a progress bar",
    "crop": "image window ROW0:ROW1,COL0:COL1 (e.g. 128:384,256:512)",
}
PRUNE_HELP = {"signal_path": "signal file, to measure PSNR and fine-tune"}  # the rest: the docstrings


def _adapt(args: argparse.Namespace) -> int:
    from inrkit.adapt import adapt_file

    return emit(adapt_file(args.input, args.output, **build_config(adapt_file, args)), args.json)


def _prune(args: argparse.Namespace) -> int:
    from inrkit.prune.api import PruneConfig, prune_file

    result = prune_file(args.model, args.output, build_config(PruneConfig, args), **build_config(prune_file, args))
    if "note" in result and args.json:  # the human output lists it already
        print(f"inrkit prune: {result['note']}", file=sys.stderr)
    if not args.json and "id_layers" in result:  # one readable line per layer instead of a JSON list
        result["id_layers"] = "; ".join(
            f"layer {r['layer']}: {r['width']}->{r['kept']} (error {r['error']:.3g}, best rank-{r['kept']} "
            f"{r['svd_error']:.3g}" + ("" if r["spectral_rank"] is None else f", spectral rank {r['spectral_rank']}")
            + ")" for r in result["id_layers"])
    return emit(result, args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``adapt`` and ``prune``."""
    from inrkit.adapt import adapt_file, preset_names
    from inrkit.prune import CRITERIA
    from inrkit.prune.api import PruneConfig, prune_file

    p = subparsers.add_parser("adapt", help="fit a signal with an AIRe schedule (densify, TWD, prune)")
    p.add_argument("input", help="signal file (image, volume, mesh)")
    add_output(p, "output model file (.safetensors)", (".safetensors",))
    add_config(p, adapt_file, choices={"preset": preset_names()}, helps=ADAPT_HELP,
               ranges={"test_fraction": (0.0, 0.99)}, parsers={"crop": parse_crop})
    add_json_flag(p)
    p.set_defaults(handler=_adapt)

    p = subparsers.add_parser("prune", help="remove neurons from a model file")
    p.add_argument("model", help="model file (.safetensors or .npz)")
    add_output(p, "output model file (.safetensors)", (".safetensors",))
    add_config(p, PruneConfig, choices={"method": choices_of(CRITERIA)}, flags={"layers": "--layer"},
               aliases={"finetune": ["--retrain"]}, exclusive=[("keep", "eps")])
    add_config(p, prune_file, only=["signal_path", "crop", "device", "progress"], helps=PRUNE_HELP,
               flags={"signal_path": "--signal"}, parsers={"crop": parse_crop})
    add_json_flag(p)
    p.set_defaults(handler=_prune)
