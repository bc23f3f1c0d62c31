"""``inrkit adapt`` (AIRe schedules) and ``inrkit prune`` (neuron pruning of a model file)."""
from __future__ import annotations

import argparse

from .common import add_device_flag, add_json_flag, emit, parse_ints

PRUNE_METHODS = ("l1", "w_in", "w_out", "product", "uniform", "coreset", "id")


def _layers(text: str | None) -> list[int] | None:
    return parse_ints(text, "--layer") if text else None


def _adapt(args: argparse.Namespace) -> None:
    from ..adapt import adapt_file

    return emit(adapt_file(args.input, args.output, preset=args.preset, config=args.config, scale=args.scale,
                    seed=args.seed, test_fraction=args.test_fraction, device=args.device), args.json)


def _prune(args: argparse.Namespace) -> None:
    from ..prune.api import prune_file

    return emit(prune_file(args.model, args.output, method=args.method, layers=_layers(args.layer), keep=args.keep,
                    eps=args.eps, signal_path=args.signal, finetune=args.finetune, lr=args.lr,
                    points=args.points, seed=args.seed, device=args.device), args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``adapt`` and ``prune``."""
    p = subparsers.add_parser("adapt", help="fit a signal with an AIRe schedule (densify, TWD, prune)")
    p.add_argument("input", help="signal file (image, volume, mesh)")
    p.add_argument("-o", "--output", required=True, help="output model file (.safetensors)")
    p.add_argument("--preset", choices=("image", "sdf"), default="image", help="built-in schedule (default image)")
    p.add_argument("--config", default=None, help="schedule file (.toml or .json); overrides --preset")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps (e.g. 0.1 on a CPU)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the schedule's)")
    p.add_argument("--test-fraction", type=float, default=0.0, help="share of samples held out for the metrics")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_adapt)

    p = subparsers.add_parser("prune", help="remove neurons from a model file")
    p.add_argument("model", help="model file (.safetensors or .npz)")
    p.add_argument("-o", "--output", required=True, help="output model file")
    p.add_argument("--method", choices=PRUNE_METHODS, default="l1", help="criterion (default l1, AIRe's)")
    p.add_argument("--layer", default=None, help="hidden layers to prune, e.g. 0,1 (default all)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--keep", type=float, default=None, help="fraction (<=1) or number of neurons kept per layer")
    g.add_argument("--eps", type=float, default=None, help="drop neurons scoring <= eps (ID: relative tolerance)")
    p.add_argument("--signal", default=None, help="signal file, to measure PSNR and fine-tune")
    p.add_argument("--finetune", type=int, default=0, help="fine-tuning steps after pruning (needs --signal)")
    p.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate")
    p.add_argument("--points", type=int, default=4096, help="domain points for ID pruning")
    p.add_argument("--seed", type=int, default=0)
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_prune)
