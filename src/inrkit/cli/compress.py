"""``inrkit compress``, ``decompress``, ``encode`` and ``decode``: the registered codecs, ``.inrz`` files.

Flags come from the library functions' signatures and :class:`inrkit.compress.encode.api.EncodeConfig`
(see :func:`inrkit.cli.common.add_config`); the ``--codec`` choices are
:data:`inrkit.compress.NETWORK_CODECS` (``compress``) and :data:`inrkit.compress.IMAGE_CODECS` (``encode``).
"""
from __future__ import annotations

import argparse

from inrkit.cli.common import add_config, add_json_flag, add_output, build_config, choices_of, emit, parse_crop
from inrkit.cli.many import add_many, check_single, emit_many
from inrkit.compress.encode.api import (
    CompressConfig,
    EncodeConfig,
    check_bpp_target,
    compress_file,
    decompress_file,
)
from inrkit.compress.encode.image import IMAGE_CODECS, decode_image, encode_image
from inrkit.compress.encode.latent import PRESETS as LATENT_PRESETS
from inrkit.compress.encode.network import NETWORK_CODECS
from inrkit.jobs import ManyOptions, encode_many, wants_many
from inrkit.limits import MAX_BPP, MAX_OVERCOMPLETE, MAX_SPARSITY_COUNT, check_range
from inrkit.models import ARCHITECTURES, parse_hidden
from inrkit.models.fast import PRECISIONS
from inrkit.train.fit import SCHEDULES

ENCODE_FIT = ["steps", "lr", "batch_size", "schedule", "precision", "seed", "device", "progress"]


def _compress(args: argparse.Namespace) -> int:
    return emit(compress_file(args.model, args.output, build_config(CompressConfig, args),
                              **build_config(compress_file, args)), args.json)


def _decompress(args: argparse.Namespace) -> int:
    return emit(decompress_file(args.file, args.output), args.json)


def _encode(args: argparse.Namespace) -> int:
    many = wants_many(args.image, build_config(ManyOptions, args))
    check_range("bpp", args.bpp, 0, MAX_BPP, low_open=True)  # before any image is read or fitted
    if not many:
        check_bpp_target(args.image, args.bpp)
    config = build_config(EncodeConfig, args)
    options = build_config(encode_image, args, steps=args.steps)  # --steps given: it overrides the preset too
    if many:  # a folder of images: one .inrz each
        summary = encode_many([args.image], args.output, config=config, redo=args.redo,
                              progress=config.progress and not args.json, **options)
        return emit_many(summary, args.json)
    check_single(args, (".inrz",))
    return emit(encode_image(args.image, args.output, config=config, **options), args.json)


def _decode(args: argparse.Namespace) -> int:
    return emit(decode_image(args.file, args.output, **build_config(decode_image, args)), args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the compression commands."""
    codecs = choices_of(NETWORK_CODECS)
    p = subparsers.add_parser("compress", help=f"compress a model file into .inrz ({', '.join(codecs)})")
    p.add_argument("model", help="model file (.safetensors or .npz)")
    add_output(p, "output .inrz file", (".inrz",))
    add_config(p, CompressConfig, skip=["bits_grid", "sparsity_grid"], flags={"finetune_steps": "--finetune"},
               choices={"codec": codecs},
               ranges={"overcomplete": (1, MAX_OVERCOMPLETE), "sparsity": (0, MAX_SPARSITY_COUNT),
                       "bits": (1, 16), "target_bytes": (1, None)})
    add_config(p, compress_file, skip=["config"], flags={"signal_path": "--signal"}, parsers={"crop": parse_crop})
    add_json_flag(p)
    p.set_defaults(handler=_compress)

    p = subparsers.add_parser("decompress", help="decode an .inrz file into a model file")
    p.add_argument("file", help=".inrz file")
    add_output(p, "output model (.safetensors)", (".safetensors",))
    add_json_flag(p)
    p.set_defaults(handler=_decompress)

    p = subparsers.add_parser("encode", help="fit an INR to an image and compress it to .inrz")
    p.add_argument("image", help="PNG or JPEG image (with --many: a folder or a quoted glob of images)")
    add_output(p, "output .inrz file (with --many: a folder, NAME.inrz per image)", (".inrz",))
    add_many(p, "image")
    add_config(p, encode_image, skip=["config", "steps"], flags={"finetune_steps": "--finetune", "lmbda": "--lambda"},
               ranges={"bpp": (0, MAX_BPP)}, parsers={"hidden": parse_hidden}, exclusive=[("bpp", "target_psnr")],
               choices={"codec": choices_of(IMAGE_CODECS), "arch": choices_of(ARCHITECTURES),
                        "preset": tuple(LATENT_PRESETS)})
    add_config(p, EncodeConfig, only=ENCODE_FIT, choices={"schedule": SCHEDULES, "precision": PRECISIONS},
               aliases={"steps": ["--iters"], "batch_size": ["--batch"]}, optional=["steps"])
    add_json_flag(p)
    p.set_defaults(handler=_encode)

    p = subparsers.add_parser("decode", help="decode an image .inrz file to PNG")
    p.add_argument("file", help=".inrz file")
    add_output(p, "output .png", (".png",))
    add_config(p, decode_image, flags={"reference": "--signal"}, aliases={"reference": ["--reference"]},
               parsers={"crop": parse_crop})
    add_json_flag(p)
    p.set_defaults(handler=_decode)
