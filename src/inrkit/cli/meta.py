"""Meta-INR commands: ``meta-train``, ``meta-encode``, ``meta-tsne``; ``synth vortex|grayscott``."""
from __future__ import annotations

import argparse

from ..errors import InvalidInputError
from ..models.mlp import parse_hidden
from .common import add_device_flag, add_json_flag, emit, parse_floats


def _cmd_meta_train(args: argparse.Namespace) -> int:
    from ..meta.api import meta_train_file
    from ..meta.pretrain import PRESETS, MetaConfig

    hidden = parse_hidden(args.hidden) if args.hidden else PRESETS[args.preset]
    config = MetaConfig(hidden=tuple(hidden), omega0=args.omega0, space_stride=args.space_stride,
                        time_stride=args.time_stride, inner_steps=args.inner_steps, outer_steps=args.outer_steps,
                        meta_batch=args.meta_batch, inner_lr=args.inner_lr, outer_lr=args.outer_lr,
                        order=args.order, inner_optimizer=args.inner_optimizer, inner_batch=args.inner_batch,
                        seed=args.seed, device=args.device, progress=not args.no_progress,
                        checkpoint_path=args.checkpoint, checkpoint_every=args.checkpoint_every if args.checkpoint else 0,
                        resume=args.resume)
    return emit(meta_train_file(args.series, args.output, config), args.json)


def _cmd_meta_encode(args: argparse.Namespace) -> int:
    from ..meta.adapt import AdaptConfig
    from ..meta.api import meta_encode_file

    config = AdaptConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, target_psnr=args.target_psnr,
                         seed=args.seed, device=args.device, progress=not args.no_progress)
    summary = meta_encode_file(args.series, args.init, args.output, config)
    if not args.json:
        summary = {k: v for k, v in summary.items() if k != "members"} | {"summary": f"{args.output}/summary.json"}
    return emit(summary, args.json)


def _cmd_meta_tsne(args: argparse.Namespace) -> int:
    from ..meta.tsne import tsne_plot

    result = tsne_plot(args.models, args.output, perplexity=args.perplexity, seed=args.seed)
    if not args.json:
        result = {k: result[k] for k in ("output", "networks", "parameters", "label_name")}
    return emit(result, args.json)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("meta-train", help="meta-pretrain a SIREN initialisation on a volume series (Meta-INR)")
    p.add_argument("series", help="series folder (manifest.json + .npy/.raw/.vti members)")
    p.add_argument("-o", "--output", required=True, help="meta-model file to write (.safetensors)")
    p.add_argument("--preset", choices=["tiny", "small", "paper"], default="small",
                   help="SIREN size: tiny 32x3, small 64x4, paper 256x6 (default small)")
    p.add_argument("--hidden", help="hidden widths instead of --preset, e.g. 128x4")
    p.add_argument("--omega0", type=float, default=30.0)
    p.add_argument("--inner-steps", type=int, default=16, help="K, inner steps per volume (default 16)")
    p.add_argument("--outer-steps", type=int, default=300, help="meta updates (default 300)")
    p.add_argument("--meta-batch", type=int, default=4, help="volumes per meta update (default 4)")
    p.add_argument("--inner-lr", type=float, default=1e-3)
    p.add_argument("--outer-lr", type=float, default=1e-4)
    p.add_argument("--order", choices=["first", "second"], default="first",
                   help="first: Reptile (default); second: MAML through torch.func")
    p.add_argument("--inner-optimizer", choices=["adam", "sgd"], default="adam", help="first-order inner optimiser")
    p.add_argument("--inner-batch", type=int, default=None, help="points per inner step (default: all sub-sampled)")
    p.add_argument("--space-stride", type=int, default=4, help="spatial sub-sampling per axis (default 4)")
    p.add_argument("--time-stride", type=int, default=2, help="temporal sub-sampling (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", help="checkpoint file for resumable meta-training")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--no-progress", action="store_true")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_cmd_meta_train)

    p = commands.add_parser("meta-encode", help="adapt a meta-initialisation to every volume of a series")
    p.add_argument("series")
    p.add_argument("--init", required=True, help="meta-model from meta-train (or any 3D->1D model)")
    p.add_argument("-o", "--output", required=True, help="folder for one model per member and summary.json")
    p.add_argument("--steps", type=int, default=100, help="Adam steps per volume (default 100)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=None, help="points per step (default: the whole volume)")
    p.add_argument("--target-psnr", type=float, default=None, help="stop a volume once it reaches this PSNR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_cmd_meta_encode)

    p = commands.add_parser("meta-tsne", help="t-SNE plot of the adapted networks' weights (PNG)")
    p.add_argument("models", help="folder written by meta-encode")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--perplexity", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(handler=_cmd_meta_tsne)


def _cmd_synth(args: argparse.Namespace) -> int:
    from ..meta.simulate import generate_series

    prange = None
    if args.param_range:
        prange = parse_floats(args.param_range, "--param-range")
        if len(prange) != 2:
            raise InvalidInputError("--param-range needs two numbers: LOW,HIGH")
    result = generate_series(args.kind, args.output, size=args.size, steps=args.steps, ensemble=args.ensemble,
                             seed=args.seed, param_range=prange, progress=not args.json)
    return emit(result, args.json)


def register_synth(kinds: argparse._SubParsersAction) -> None:
    helps = {"vortex": "scalar advected and diffused by a time-dependent vortex flow (volume series)",
             "grayscott": "3D Gray-Scott reaction-diffusion (volume series)"}
    for kind, text in helps.items():
        p = kinds.add_parser(kind, help=text)
        p.add_argument("-o", "--output", required=True, help="series folder to write")
        p.add_argument("--size", type=int, default=32, help="grid cells per axis (default 32)")
        p.add_argument("--steps", type=int, default=20, help="time steps written (default 20)")
        p.add_argument("--ensemble", type=int, default=0,
                       help="N members over the simulation parameter (final states) instead of a time series")
        p.add_argument("--param-range", help="LOW,HIGH of the ensemble parameter "
                       + ("(strength, default 0.5,1.5)" if kind == "vortex" else "(feed rate F, default 0.030,0.046)"))
        p.add_argument("--seed", type=int, default=0)
        add_json_flag(p)
        p.set_defaults(handler=_cmd_synth, kind=kind)
