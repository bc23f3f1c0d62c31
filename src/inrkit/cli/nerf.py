"""``nerf-train``, ``nerf-render``, ``nerf-prune`` and ``inrkit synth scene``.

Flags and defaults come from :class:`inrkit.nerf.TrainConfig` and the ``inrkit.nerf`` file functions;
``nerf-prune --method`` choices are the weight criteria of :data:`inrkit.prune.CRITERIA`.
"""
from __future__ import annotations

import argparse

from inrkit.cli.common import add_config, add_json_flag, add_output, build_config, emit
from inrkit.limits import MAX_HIDDEN_LAYERS, MAX_HIDDEN_WIDTH, MAX_OUTPUT_SIDE, MAX_RAY_SAMPLES

# one spelling per idea across commands; the old NeRF spellings stay as aliases
FLAGS = {"n_samples": "--samples", "n_importance": "--importance", "scene_dir": "--scene", "retrain": "--finetune"}
ALIASES = {"steps": ["--iters"], "batch_size": ["--batch"], "precrop_steps": ["--precrop-iters"],
           "retrain": ["--retrain"], "finetune": ["--retrain"]}
HELP = {
    "arch": "grid: grid-encoded field with an occupancy grid (instant-NGP); mlp: the NeRF MLP",
    "width": "MLP width (none: 64; the paper's NeRF MLP: 256)",
    "depth": "trunk layers (paper 8)",
    "downscale": "integer image downscale factor",
    "views": "turntable frames for .gif",
    "azimuth": "camera azimuth in degrees for .png",
    "elevation": "camera elevation in degrees",
    "size": "longer image side in pixels (none: the training size)",
    "scene_dir": "scene folder of the retraining and the PSNR (none: the one recorded in the NeRF file)",
    "view": "test view index (needs --scene)",
    "n_samples": "samples per ray (none: as trained)",
    "n_importance": "hierarchical samples per ray (none: as trained)",
    "method": "pruning criterion",
    "retrain": "training steps after pruning",
    "finetune": "training steps after pruning",
    "mode": "retrain: full lr schedule from the pruned weights; finetune: low lr; scratch: random init",
    "eval_views": "test views rendered for PSNR (none: all)",
    "seed": "seed",
    "device": "cpu, cuda, cuda:1, mps (none: pick automatically)",
    "test_views": "val and test views each",
}
SAMPLES = (2, MAX_RAY_SAMPLES)
RANGES = {"width": (1, MAX_HIDDEN_WIDTH), "depth": (2, MAX_HIDDEN_LAYERS), "downscale": (1, 64),
          "size": (8, MAX_OUTPUT_SIDE), "views": (1, 3600), "test_views": (1, 3600), "n_samples": SAMPLES,
          "n_importance": (0, MAX_RAY_SAMPLES)}
SIGNED = ("azimuth", "elevation")


def _train(args: argparse.Namespace) -> int:
    from inrkit.nerf import TrainConfig, nerf_train_file

    config = build_config(TrainConfig, args, progress=args.progress and not args.json)  # bars: not under --json
    return emit(nerf_train_file(args.scene, args.output, config=config,
                                **build_config(nerf_train_file, args)), args.json)


def _render(args: argparse.Namespace) -> int:
    from inrkit.nerf import nerf_render_file

    return emit(nerf_render_file(args.model, args.output, **build_config(nerf_render_file, args)), args.json)


def _prune(args: argparse.Namespace) -> int:
    from inrkit.nerf import nerf_prune_file

    return emit(nerf_prune_file(args.model, args.output, **build_config(nerf_prune_file, args)), args.json)


def _synth_scene(args: argparse.Namespace) -> int:
    from inrkit.nerf import synth_scene

    return emit(synth_scene(args.output, **build_config(synth_scene, args)), args.json)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``nerf-train``, ``nerf-render`` and ``nerf-prune``."""
    from inrkit.nerf import TrainConfig, nerf_prune_file, nerf_render_file, nerf_train_file
    from inrkit.nerf.train import ARCHS
    from inrkit.prune import CRITERIA

    p = commands.add_parser("nerf-train", help="train a NeRF on a Blender-format scene folder")
    p.add_argument("scene", help="folder with transforms_{train,val,test}.json and RGBA PNGs")
    add_output(p, "NeRF file to write (.safetensors)", (".safetensors",))
    add_config(p, nerf_train_file, skip=["config"], helps=HELP, ranges=RANGES, choices={"arch": ARCHS})
    add_config(p, TrainConfig, flags=FLAGS, aliases=ALIASES, ranges=RANGES)
    add_json_flag(p)
    p.set_defaults(handler=_train)

    p = commands.add_parser("nerf-render", help="render a NeRF: one view (.png) or a turntable (.gif)")
    p.add_argument("model", help="NeRF file (.safetensors)")
    add_output(p, ".png (one view) or .gif (turntable)", (".png", ".gif"))
    add_config(p, nerf_render_file, flags=FLAGS, ranges=RANGES, signed=SIGNED,
               helps={**HELP, "scene_dir": "scene folder: with --view, render that test view and report its PSNR"})
    add_json_flag(p)
    p.set_defaults(handler=_render)

    weight_criteria = tuple(name for name, c in CRITERIA.items() if not getattr(c, "needs_points", False))
    p = commands.add_parser("nerf-prune", help="prune a NeRF's neurons (coreset, importance, uniform) and retrain")
    p.add_argument("model", help="NeRF file (.safetensors)")
    add_output(p, "pruned NeRF file to write (.safetensors)", (".safetensors",))
    add_config(p, nerf_prune_file, flags=FLAGS, aliases=ALIASES, helps=HELP, ranges=RANGES,
               choices={"method": weight_criteria, "mode": ("retrain", "finetune", "scratch")})
    add_json_flag(p)
    p.set_defaults(handler=_prune)


def register_synth(kinds: argparse._SubParsersAction) -> None:
    """Add ``inrkit synth scene``."""
    from inrkit.nerf import synth_scene

    p = kinds.add_parser("scene", help="analytic Blender-format scene (coloured shaded solids) for NeRF")
    add_output(p, "output folder (created)", folder=True)
    add_config(p, synth_scene, helps={**HELP, "size": "image side in pixels", "views": "training views"},
               ranges=RANGES)
    add_json_flag(p)
    p.set_defaults(handler=_synth_scene)
