"""``inrkit compress``, ``decompress``, ``encode`` and ``decode``: the registered codecs, ``.inrz`` files.

Flags come from the library functions' signatures and :class:`inrkit.compress.api.EncodeConfig`
(see :func:`inrkit.cli.common.add_config`); the ``--codec`` choices are :data:`inrkit.compress.CODECS`.
"""
from __future__ import annotations

import argparse

from inrkit.cli.common import add_config, add_json_flag, add_output, build_config, choices_of, emit
from inrkit.compress.api import EncodeConfig, compress_file, decode_image, decompress_file, encode_image
from inrkit.compress.codecs import CODECS
from inrkit.limits import MAX_BPP
from inrkit.models import ARCHITECTURES, parse_hidden
from inrkit.models.fast import PRECISIONS
from inrkit.train.fit import SCHEDULES

ENCODE_FIT = ["steps", "lr", "batch_size", "schedule", "precision", "seed", "device", "progress"]


def _compress(args: argparse.Namespace) -> int:
    return emit(compress_file(args.model, args.output, **build_config(compress_file, args)), args.json)


def _decompress(args: argparse.Namespace) -> int:
    return emit(decompress_file(args.file, args.output), args.json)


def _encode(args: argparse.Namespace) -> int:
    config = build_config(EncodeConfig, args)
    return emit(encode_image(args.image, args.output, config=config, **build_config(encode_image, args)), args.json)


def _decode(args: argparse.Namespace) -> int:
    return emit(decode_image(args.file, args.output, **build_config(decode_image, args)), args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the compression commands."""
    codecs = choices_of(CODECS)
    p = subparsers.add_parser("compress", help=f"compress a model file into .inrz ({', '.join(codecs)})")
    p.add_argument("model", help="model file (.safetensors or .npz)")
    add_output(p, "output .inrz file", (".inrz",))
    add_config(p, compress_file, flags={"signal_path": "--signal", "finetune_steps": "--finetune"},
               choices={"codec": codecs})
    add_json_flag(p)
    p.set_defaults(handler=_compress)

    p = subparsers.add_parser("decompress", help="decode an .inrz file into a model file")
    p.add_argument("file", help=".inrz file")
    add_output(p, "output model (.safetensors)", (".safetensors",))
    add_json_flag(p)
    p.set_defaults(handler=_decompress)

    p = subparsers.add_parser("encode", help="fit an INR to an image and compress it to .inrz")
    p.add_argument("image", help="PNG or JPEG image")
    add_output(p, "output .inrz file", (".inrz",))
    add_config(p, encode_image, skip=["config"], flags={"finetune_steps": "--finetune"}, ranges={"bpp": (0, MAX_BPP)},
               choices={"codec": codecs, "arch": choices_of(ARCHITECTURES)}, parsers={"hidden": parse_hidden},
               exclusive=[("bpp", "target_psnr")])
    add_config(p, EncodeConfig, only=ENCODE_FIT, choices={"schedule": SCHEDULES, "precision": PRECISIONS},
               aliases={"steps": ["--iters"], "batch_size": ["--batch"]})
    add_json_flag(p)
    p.set_defaults(handler=_encode)

    p = subparsers.add_parser("decode", help="decode an image .inrz file to PNG")
    p.add_argument("file", help=".inrz file")
    add_output(p, "output .png", (".png",))
    add_config(p, decode_image)
    add_json_flag(p)
    p.set_defaults(handler=_decode)
