"""``nerf-train``, ``nerf-render``, ``nerf-prune`` and ``inrkit synth scene``."""
from __future__ import annotations

import argparse

from .common import add_device_flag, add_json_flag, emit

METHODS = ("coreset", "w_out", "w_in", "product", "uniform")


def _train(args: argparse.Namespace) -> int:
    from ..nerf.api import nerf_train_file
    from ..nerf.train import TrainConfig

    cfg = TrainConfig(iters=args.iters, batch_rays=args.batch, lr=args.lr, lr_final=args.lr_final,
                      n_samples=args.samples, n_importance=args.importance, seed=args.seed, device=args.device,
                      eval_views=args.eval_views, time_budget=args.time_budget, progress=not args.no_progress)
    return emit(nerf_train_file(args.scene, args.output, width=args.width, depth=args.depth, config=cfg,
                                downscale=args.downscale), args.json)


def _render(args: argparse.Namespace) -> int:
    from ..nerf.api import nerf_render_file

    return emit(nerf_render_file(args.model, args.output, views=args.views, azimuth=args.azimuth,
                                 elevation=args.elevation, size=args.size, scene_dir=args.scene, view=args.view,
                                 n_samples=args.samples, n_importance=args.importance), args.json)


def _prune(args: argparse.Namespace) -> int:
    from ..nerf.api import nerf_prune_file

    return emit(nerf_prune_file(args.model, args.output, method=args.method, width=args.width,
                                retrain=args.retrain, mode=args.mode, scene_dir=args.scene, seed=args.seed,
                                device=args.device, eval_views=args.eval_views), args.json)


def _synth_scene(args: argparse.Namespace) -> int:
    from ..nerf.api import synth_scene

    return emit(synth_scene(args.output, size=args.size, views=args.views, test_views=args.test_views,
                            seed=args.seed), args.json)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``nerf-train``, ``nerf-render`` and ``nerf-prune``."""
    p = commands.add_parser("nerf-train", help="train a NeRF on a Blender-format scene folder")
    p.add_argument("scene", help="folder with transforms_{train,val,test}.json and RGBA PNGs")
    p.add_argument("-o", "--output", required=True, help="NeRF file to write (.safetensors)")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--width", type=int, default=256, help="trunk/feature width (paper 256; CPU: 64)")
    p.add_argument("--depth", type=int, default=8, help="trunk layers (paper 8)")
    p.add_argument("--batch", type=int, default=1024, help="rays per step (paper 4096; CPU: 256)")
    p.add_argument("--samples", type=int, default=64, help="stratified samples per ray (CPU: 32)")
    p.add_argument("--importance", type=int, default=64, help="hierarchical samples per ray (CPU: 32)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lr-final", type=float, default=5e-5)
    p.add_argument("--downscale", type=int, default=1, help="integer image downscale factor")
    p.add_argument("--eval-views", type=int, default=None, help="test views rendered for PSNR (default all)")
    p.add_argument("--time-budget", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_train)

    p = commands.add_parser("nerf-render", help="render a NeRF: one view (.png) or a turntable (.gif)")
    p.add_argument("model", help="NeRF file (.safetensors)")
    p.add_argument("-o", "--output", required=True, help=".png (one view) or .gif (turntable)")
    p.add_argument("--views", type=int, default=36, help="turntable frames for .gif (default 36)")
    p.add_argument("--azimuth", type=float, default=30.0, help="camera azimuth in degrees for .png")
    p.add_argument("--elevation", type=float, default=30.0, help="camera elevation in degrees")
    p.add_argument("--size", type=int, default=None, help="longer image side in pixels (default: training size)")
    p.add_argument("--scene", default=None, help="scene folder: with --view, render that test view and report PSNR")
    p.add_argument("--view", type=int, default=None, help="test view index (needs --scene)")
    p.add_argument("--samples", type=int, default=None, help="samples per ray (default: as trained)")
    p.add_argument("--importance", type=int, default=None, help="hierarchical samples (default: as trained)")
    add_json_flag(p)
    p.set_defaults(handler=_render)

    p = commands.add_parser("nerf-prune", help="prune a NeRF's neurons (coreset, importance, uniform) and retrain")
    p.add_argument("model", help="NeRF file (.safetensors)")
    p.add_argument("-o", "--output", required=True, help="pruned NeRF file to write")
    p.add_argument("--method", choices=METHODS, default="coreset")
    p.add_argument("--width", type=int, default=128, help="neurons kept per hidden layer (default 128)")
    p.add_argument("--retrain", type=int, default=0, help="training steps after pruning (default 0)")
    p.add_argument("--mode", choices=("retrain", "finetune", "scratch"), default="retrain",
                   help="retrain: full lr schedule from the pruned weights; finetune: low lr; scratch: random init")
    p.add_argument("--scene", default=None, help="scene folder (default: the one recorded in the NeRF file)")
    p.add_argument("--eval-views", type=int, default=None, help="test views rendered for PSNR (default all)")
    p.add_argument("--seed", type=int, default=0)
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_prune)


def register_synth(kinds: argparse._SubParsersAction) -> None:
    """Add ``inrkit synth scene``."""
    p = kinds.add_parser("scene", help="analytic Blender-format scene (coloured shaded solids) for NeRF")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--size", type=int, default=100, help="image side in pixels (default 100)")
    p.add_argument("--views", type=int, default=25, help="training views (default 25)")
    p.add_argument("--test-views", type=int, default=8, help="val and test views each (default 8)")
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(handler=_synth_scene)
