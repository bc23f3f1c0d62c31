"""``inrkit compress``, ``decompress``, ``encode`` and ``decode``: SINR and baseline codecs, ``.inrz`` files."""
from __future__ import annotations

import argparse

from .common import add_device_flag, add_json_flag, emit


def _compress(args: argparse.Namespace) -> None:
    from ..compress import compress_file

    emit(compress_file(args.model, args.output, args.codec, sparsity=args.sparsity, bits=args.bits,
                       target_psnr=args.target_psnr, target_bytes=args.target_bytes, signal_path=args.signal,
                       finetune_steps=args.finetune, overcomplete=args.overcomplete, seed=args.seed,
                       device=args.device), args.json)


def _decompress(args: argparse.Namespace) -> None:
    from ..compress import decompress_file

    emit(decompress_file(args.file, args.output), args.json)


def _encode(args: argparse.Namespace) -> None:
    from ..compress import encode_image
    from ..models import parse_hidden

    hidden = parse_hidden(args.hidden) if args.hidden else None
    emit(encode_image(args.image, args.output, bpp=args.bpp, target_psnr=args.target_psnr, codec=args.codec,
                      hidden=hidden, arch=args.arch, steps=args.steps, lr=args.lr, finetune_steps=args.finetune,
                      seed=args.seed, device=args.device), args.json)


def _decode(args: argparse.Namespace) -> None:
    from ..compress import decode_image

    emit(decode_image(args.file, args.output, reference=args.reference), args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the compression commands."""
    p = subparsers.add_parser("compress", help="compress a model file into .inrz (sinr, quant or coin)")
    p.add_argument("model", help="model file (.safetensors or .npz)")
    p.add_argument("-o", "--output", required=True, help="output .inrz file")
    p.add_argument("--codec", choices=("sinr", "quant", "coin"), default="sinr")
    p.add_argument("--sparsity", type=float, default=None,
                   help="atoms per weight vector: a fraction of its length (<1) or a count (default 0.4)")
    p.add_argument("--bits", type=int, default=None, help="bit depth of coefficients / weights (default 8)")
    p.add_argument("--target-psnr", type=float, default=None, help="smallest file reaching this PSNR (needs --signal)")
    p.add_argument("--target-bytes", type=int, default=None, help="best PSNR within this many bytes")
    p.add_argument("--signal", default=None, help="the signal the model represents (to measure PSNR)")
    p.add_argument("--finetune", type=int, default=0, help="steps of coefficient fine-tuning (needs --signal)")
    p.add_argument("--overcomplete", type=float, default=8.0, help="dictionary atoms per vector length (k2/k1)")
    p.add_argument("--seed", type=int, default=0, help="dictionary seed")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_compress)

    p = subparsers.add_parser("decompress", help="decode an .inrz file into a model file")
    p.add_argument("file", help=".inrz file")
    p.add_argument("-o", "--output", required=True, help="output model (.safetensors)")
    add_json_flag(p)
    p.set_defaults(handler=_decompress)

    p = subparsers.add_parser("encode", help="fit an INR to an image and compress it to .inrz")
    p.add_argument("image", help="PNG or JPEG image")
    p.add_argument("-o", "--output", required=True, help="output .inrz file")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--bpp", type=float, default=None, help="target bits per pixel")
    target.add_argument("--target-psnr", type=float, default=None, help="target PSNR in dB")
    p.add_argument("--codec", choices=("sinr", "quant", "coin"), default="sinr")
    p.add_argument("--hidden", default=None, help="hidden widths, e.g. 64x3 (default: sized to the target)")
    p.add_argument("--arch", choices=("siren", "finer", "ffn"), default="siren")
    p.add_argument("--steps", type=int, default=2000, help="fitting steps")
    p.add_argument("--lr", type=float, default=2e-4, help="fitting learning rate")
    p.add_argument("--finetune", type=int, default=0, help="steps of coefficient fine-tuning after sparse coding")
    p.add_argument("--seed", type=int, default=0)
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_encode)

    p = subparsers.add_parser("decode", help="decode an image .inrz file to PNG")
    p.add_argument("file", help=".inrz file")
    p.add_argument("-o", "--output", required=True, help="output .png")
    p.add_argument("--reference", default=None, help="original image, to report the PSNR")
    add_json_flag(p)
    p.set_defaults(handler=_decode)
