"""``inrkit eval-codec``: CompressAI-style rate-distortion JSON of a codec over a folder of images.

Flags come from :func:`inrkit.compress.encode.evaluate.evaluate_codec` and the fitting fields of
:class:`inrkit.compress.encode.api.EncodeConfig`; the ``--codec`` choices are :data:`inrkit.compress.IMAGE_CODECS`.
"""
from __future__ import annotations

import argparse

from inrkit.cli.common import (
    add_config,
    add_json_flag,
    add_output,
    build_config,
    choices_of,
    emit,
    parse_crop,
    parse_floats,
)
from inrkit.compress.encode.api import EncodeConfig
from inrkit.compress.encode.evaluate import PIL_FORMATS, evaluate_codec, rd_summary
from inrkit.compress.encode.image import IMAGE_CODECS
from inrkit.models import ARCHITECTURES, parse_hidden
from inrkit.models.fast import PRECISIONS
from inrkit.train.fit import SCHEDULES

ENCODE_FIT = ["steps", "lr", "batch_size", "schedule", "precision", "seed", "device", "progress"]


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip().lower() for t in text.split(",") if t.strip())


def _bpps(text: str) -> tuple[float, ...]:
    return tuple(parse_floats(text, "--bpp"))


def _eval_codec(args: argparse.Namespace) -> int:
    config = build_config(EncodeConfig, args, progress=args.progress and not args.json)
    result = evaluate_codec(args.folder, args.output, config=config, **build_config(evaluate_codec, args))
    return emit(result if args.json and args.output is None else rd_summary(result), args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval-codec``."""
    p = subparsers.add_parser("eval-codec", help="rate-distortion JSON (bpp, PSNR, MS-SSIM, times) of a codec "
                                                 "over a folder of images, CompressAI-style")
    p.add_argument("folder", help="folder of PNG/JPEG images (e.g. ../shared/data/kodak)")
    add_output(p, "RD results to write (.json; rewritten after each image) (default: none, print the means only)",
               (".json",), required=False)
    add_config(p, evaluate_codec, skip=["config", "output"], flags={"finetune_steps": "--finetune"},
               parsers={"bpp": _bpps, "baseline": _names, "hidden": parse_hidden, "crop": parse_crop},
               choices={"codec": choices_of(IMAGE_CODECS), "arch": choices_of(ARCHITECTURES)},
               helps={"baseline": f"classical codecs at the same targets, comma-separated: {','.join(PIL_FORMATS)} "
                                   "(Pillow)"},
               ranges={"max_images": (1, None)})
    add_config(p, EncodeConfig, only=ENCODE_FIT, choices={"schedule": SCHEDULES, "precision": PRECISIONS},
               aliases={"steps": ["--iters"], "batch_size": ["--batch"]})
    add_json_flag(p)
    p.set_defaults(handler=_eval_codec)
