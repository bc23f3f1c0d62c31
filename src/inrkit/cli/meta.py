"""Meta-INR commands: ``meta-train``, ``meta-encode``, ``meta-tsne``; ``synth vortex|grayscott``.

Flags and defaults come from :class:`inrkit.meta.MetaConfig`, :class:`inrkit.meta.FinetuneConfig`,
:func:`inrkit.meta.tsne_plot` and :func:`inrkit.meta.generate_series`.
"""
from __future__ import annotations

import argparse

from inrkit.cli.common import add_config, add_json_flag, add_output, build_config, emit, parse_floats
from inrkit.errors import InvalidInputError
from inrkit.limits import MAX_GRID_VOXELS, MAX_SERIES_VOXELS
from inrkit.models import parse_hidden

META_FLAGS = {"checkpoint_path": "--checkpoint"}
META_CHOICES = {"order": ("first", "second"), "inner_optimizer": ("adam", "sgd")}
SYNTH_HELP = {
    "size": "grid cells per axis",
    "steps": "time steps written",
    "ensemble": "N members over the simulation parameter (final states) instead of a time series",
    "seed": "seed of the initial condition",
}


def _cmd_meta_train(args: argparse.Namespace) -> int:
    from inrkit.meta import PRESETS, MetaConfig
    from inrkit.meta.api import meta_train_file

    preset = {"hidden": PRESETS[args.preset]} if args.preset and args.hidden is None else {}
    config = build_config(MetaConfig, args, **preset)
    return emit(meta_train_file(args.series, args.output, config), args.json)


def _cmd_meta_encode(args: argparse.Namespace) -> int:
    from inrkit.cli.many import emit_many
    from inrkit.meta import FinetuneConfig
    from inrkit.meta.api import meta_encode_file

    summary = meta_encode_file(args.series, args.init, args.output, build_config(FinetuneConfig, args), redo=args.redo)
    return emit_many(summary, args.json)


def _cmd_meta_tsne(args: argparse.Namespace) -> int:
    from inrkit.meta import tsne_plot

    result = tsne_plot(args.models, args.output, **build_config(tsne_plot, args))
    if not args.json:
        result = {k: result[k] for k in ("output", "networks", "parameters", "label_name")}
    return emit(result, args.json)


def _cmd_synth(args: argparse.Namespace) -> int:
    from inrkit.meta import generate_series

    kwargs = build_config(generate_series, args, progress=not args.json)
    if kwargs.get("param_range") is not None and len(kwargs["param_range"]) != 2:
        raise InvalidInputError("--param-range needs two numbers: LOW,HIGH")
    volumes = kwargs["ensemble"] or kwargs["steps"]
    if kwargs["size"] ** 3 * volumes > MAX_SERIES_VOXELS:
        raise InvalidInputError(f"--size {kwargs['size']} with {volumes} volumes is {kwargs['size'] ** 3 * volumes} "
                                f"voxels (at most {MAX_SERIES_VOXELS})")
    return emit(generate_series(args.kind, args.output, **kwargs), args.json)


def register(commands: argparse._SubParsersAction) -> None:
    from inrkit.meta import PRESETS, FinetuneConfig, MetaConfig, tsne_plot
    from inrkit.meta.api import meta_encode_file

    p = commands.add_parser("meta-train", help="meta-pretrain a SIREN initialisation on a volume series (Meta-INR)")
    p.add_argument("series", help="series folder (manifest.json + .npy/.raw/.vti members)")
    add_output(p, "meta-model file to write (.safetensors)", (".safetensors",))
    sizes = ", ".join(f"{k} {'x'.join(map(str, v[:1]))}x{len(v)}" for k, v in PRESETS.items())
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help=f"SIREN size instead of --hidden: {sizes} (default: the config's hidden widths)")
    add_config(p, MetaConfig, flags=META_FLAGS, choices=META_CHOICES, parsers={"hidden": parse_hidden},
               skip=["train_members"])
    add_json_flag(p)
    p.set_defaults(handler=_cmd_meta_train)

    p = commands.add_parser("meta-encode", help="adapt a meta-initialisation to every volume of a series")
    p.add_argument("series")
    p.add_argument("--init", required=True, help="meta-model from meta-train (or any 3D->1D model)")
    add_output(p, "folder for one model per member, summary.json and summary.csv (created; a rerun resumes)",
               folder=True)
    add_config(p, FinetuneConfig, aliases={"steps": ["--iters"], "batch_size": ["--batch"]})
    add_config(p, meta_encode_file, only=["redo"])
    add_json_flag(p)
    p.set_defaults(handler=_cmd_meta_encode)

    p = commands.add_parser("meta-tsne", help="t-SNE plot of the adapted networks' weights (PNG)")
    p.add_argument("models", help="folder written by meta-encode")
    add_output(p, "PNG to write", (".png",))
    add_config(p, tsne_plot, helps={"perplexity": "t-SNE perplexity (none: chosen from the number of networks)",
                                    "seed": "t-SNE seed"})
    add_json_flag(p)
    p.set_defaults(handler=_cmd_meta_tsne)


def register_synth(kinds: argparse._SubParsersAction) -> None:
    from inrkit.meta import generate_series

    helps = {"vortex": "scalar advected and diffused by a time-dependent vortex flow (volume series)",
             "grayscott": "3D Gray-Scott reaction-diffusion (volume series)"}
    ranges = {"vortex": "LOW,HIGH of the ensemble's vortex strength (none: 0.5,1.5)",
              "grayscott": "LOW,HIGH of the ensemble's feed rate F (none: 0.030,0.046)"}
    for kind, text in helps.items():
        p = kinds.add_parser(kind, help=text)
        add_output(p, "series folder to write (created)", folder=True)
        add_config(p, generate_series, skip=["progress"], helps={**SYNTH_HELP, "param_range": ranges[kind]},
                   parsers={"param_range": _floats},
                   ranges={"size": (4, round(MAX_GRID_VOXELS ** (1 / 3))), "steps": (1, None)})
        add_json_flag(p)
        p.set_defaults(handler=_cmd_synth, kind=kind)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(parse_floats(text, "--param-range"))
