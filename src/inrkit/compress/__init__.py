"""Compression: image codecs and network codecs, ``.inrz`` files.

Two registries: :data:`IMAGE_CODECS` (:class:`ImageCodec`: an image file into ``.inrz`` and back; ``latent``, the
latent-grid codec, and ``sinr``/``quant``/``coin`` through a fitted INR) and :data:`NETWORK_CODECS`
(:class:`NetworkCodec`: a model file into ``.inrz``; SINR's sparse codes over a seeded dictionary, ``quant``,
``coin``). Two packages: :mod:`inrkit.compress.decode` (the format, entropy coding, layouts and each codec's decode
half: NumPy, Brotli and constriction only) and :mod:`inrkit.compress.encode` (everything that needs torch: the
encoders, the registries, target search, files, images, ``eval-codec``).

Names are loaded on first use, so ``import inrkit.compress.decode.decoder`` never imports torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "IMAGE_CODECS": "encode.image", "ImageCodec": "encode.image", "image_codec_of": "encode.image",
    "NETWORK_CODECS": "encode.network", "NetworkCodec": "encode.network", "CoinOptions": "encode.network",
    "QuantOptions": "encode.network", "register_network_codec": "encode.network",
    "DECODERS": "decode.network",
    "Decoded": "decode.decoder", "decode_file": "decode.decoder",
    "SinrOptions": "decode.layout", "SparseLayer": "decode.layout", "SparseModel": "decode.layout",
    "RowModel": "decode.layout", "pack": "decode.container", "unpack": "decode.container",
    "GENERATOR_NAME": "decode.dictionary", "sensing_matrix": "decode.dictionary",
    "coding": "decode.coding", "entropy": "decode.entropy",
    "sparse_code": "encode.sparse",
    "finetune_codes": "encode.finetune", "quantisation_aware": "encode.qat",
    "compress_model": "encode.encoder", "encode_coin": "encode.encoder", "encode_quant": "encode.encoder",
    "encode_sinr": "encode.encoder", "decode_model": "encode.model",
    "Compressed": "encode.api", "CompressConfig": "encode.api", "compress_file": "encode.api",
    "compress_to_target": "encode.api",
    "decode_image": "encode.image", "decompress_file": "encode.api", "EncodeConfig": "encode.api",
    "encode_image": "encode.image",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    value = module if module.__name__.endswith(f".{name}") else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
