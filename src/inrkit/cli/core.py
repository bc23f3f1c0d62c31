"""Core commands: fit, eval, info, render, demo, and ``synth sin-radial``.

Flags come from :class:`inrkit.api.ModelSpec`, :class:`inrkit.signals.SignalOptions`,
:class:`inrkit.train.FitConfig` and the library functions' signatures (see :func:`add_config`).
"""
from __future__ import annotations

import argparse

from inrkit.api import (
    ARCH_CHOICES,
    WEIGHT_DTYPE_CHOICES,
    ModelSpec,
    evaluate_file,
    fit_file,
    model_info,
    render_file,
    synth_sin_radial,
)
from inrkit.cli.common import (
    add_config,
    add_json_flag,
    add_output,
    build_config,
    declare_output,
    emit,
    parse_crop,
)
from inrkit.demo import run_demo
from inrkit.errors import InvalidInputError
from inrkit.limits import MAX_LR, MAX_OMEGA, MAX_OUTPUT_SIDE, MIN_OMEGA
from inrkit.models import ACTIVATIONS, parse_hidden
from inrkit.models.fast import PRECISIONS
from inrkit.signals import SignalOptions
from inrkit.train import FitConfig
from inrkit.train.fit import OPTIMIZERS, SCHEDULES

FIT_FLAGS = {"history_path": "--history", "checkpoint_path": "--checkpoint", "plot_path": "--plot"}
FIT_CHOICES = {"schedule": SCHEDULES, "optimizer": OPTIMIZERS, "precision": PRECISIONS}
SIGNAL_PARSERS = {"crop": parse_crop}
MODEL_RANGES = {"omega0": (MIN_OMEGA, MAX_OMEGA)}
FIT_RANGES = {"lr": (0, MAX_LR), "encoding_lr": (0, MAX_LR), "adam_eps": (0, 1), "lr_min_factor": (0, 1)}


def _cmd_fit(args: argparse.Namespace) -> int:
    _, summary = fit_file(args.input, args.output, build_config(ModelSpec, args), build_config(FitConfig, args),
                          build_config(SignalOptions, args))
    return emit(summary, args.json)


def _cmd_eval(args: argparse.Namespace) -> int:
    if (args.input is None) == (args.signal is None):
        raise InvalidInputError("eval needs the signal once: as the second argument or as --signal")
    signal = args.input if args.signal is None else args.signal
    return emit(evaluate_file(args.model, signal, **build_config(SignalOptions, args).kwargs()), args.json)


def _cmd_info(args: argparse.Namespace) -> int:
    return emit(model_info(args.model), args.json)


def _cmd_render(args: argparse.Namespace) -> int:
    return emit(render_file(args.model, args.output, **build_config(render_file, args)), args.json)


def _cmd_demo(args: argparse.Namespace) -> int:
    metrics = run_demo(**build_config(run_demo, args, progress=not args.json))
    if not args.json:
        print(f"inrkit demo: wrote model, reconstruction and metrics to {metrics['output_dir']}/")
    return emit(metrics, args.json)


def _cmd_sin_radial(args: argparse.Namespace) -> int:
    return emit(synth_sin_radial(args.output, **build_config(synth_sin_radial, args)), args.json)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("fit", help="fit an INR to an image, volume, field or mesh (SDF)")
    p.add_argument("input", help="PNG/JPEG, .npy/.raw/.vti/.vtk, .ply/.obj/.stl, analytic:sin-radial, or (with "
                                 "inrkit[viz]) .mhd/.mha/.nrrd/.nhdr/.nii/.nii.gz/.slc/.tif, a TIFF or DICOM folder")
    add_output(p, "model file to write (.safetensors)", (".safetensors",))
    add_config(p, ModelSpec, choices={"arch": ARCH_CHOICES, "activation": ACTIVATIONS,
                                      "weight_dtype": WEIGHT_DTYPE_CHOICES},
               parsers={"hidden": parse_hidden}, ranges=MODEL_RANGES)
    add_config(p, FitConfig, flags=FIT_FLAGS, choices=FIT_CHOICES, ranges=FIT_RANGES,
               aliases={"steps": ["--iters"], "batch_size": ["--batch"]})
    add_config(p, SignalOptions, parsers=SIGNAL_PARSERS)
    declare_output(p, "plot_path", "--plot", (".png",))
    add_json_flag(p)
    p.set_defaults(handler=_cmd_fit)

    p = commands.add_parser("eval", help="metrics of a model against a signal")
    p.add_argument("model")
    p.add_argument("input", nargs="?", metavar="SIGNAL", help="the signal to compare against (or --signal)")
    p.add_argument("--signal", default=None,
                   help="the signal to compare against, instead of the second argument (default: none)")
    add_config(p, SignalOptions, parsers=SIGNAL_PARSERS, skip=["test_fraction"])
    add_json_flag(p)
    p.set_defaults(handler=_cmd_eval)

    p = commands.add_parser("info", help="architecture, widths, parameters and bytes of a model")
    p.add_argument("model")
    add_json_flag(p)
    p.set_defaults(handler=_cmd_info)

    p = commands.add_parser("render", help="render a model: image (.png), volume (.npy/.vti), SDF mesh (.ply) "
                                           "or distance volume (.vti)")
    p.add_argument("model")
    add_output(p, "output file: .png image (a volume's mid-planes), .npy/.vti volume, .ply/.obj/.stl mesh or "
                  ".vti distances of an SDF (the model's signal decides)")
    add_config(p, render_file, only=["size", "plane"], flags={"plane": "--slice"},
               ranges={"size": (1, MAX_OUTPUT_SIDE)})
    add_json_flag(p)
    p.set_defaults(handler=_cmd_render)

    p = commands.add_parser("demo", help="fit a SIREN to a bundled image and write the results to a folder")
    add_config(p, run_demo, skip=["progress"], flags={"output_dir": ["-o", "--output"]},
               parsers={"hidden": parse_hidden}, ranges={"size": (8, MAX_OUTPUT_SIDE // 4), "steps": (0, None)})
    declare_output(p, "output_dir", "--output", folder=True)
    add_json_flag(p)
    p.set_defaults(handler=_cmd_demo)


def register_synth(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser("sin-radial", help="f(r) = sin(1/(alpha + r)) on [-1,1]^2, sampled on a grid")
    add_output(p, ".npy (values) or .png (colour map)", (".npy", ".png"))
    add_config(p, synth_sin_radial, ranges={"size": (2, MAX_OUTPUT_SIDE)})
    add_json_flag(p)
    p.set_defaults(handler=_cmd_sin_radial)
