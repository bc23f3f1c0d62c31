"""SINR compression of INRs (sparse codes over a seeded dictionary), baselines and the ``.inrz`` format.

Layout: :mod:`~inrkit.compress.codecs` (the codec registry :data:`CODECS`),
:mod:`~inrkit.compress.decoder` (the standalone decoder: NumPy, stdlib, Brotli),
:mod:`~inrkit.compress.layout`, :mod:`~inrkit.compress.coding`, :mod:`~inrkit.compress.container`
and :mod:`~inrkit.compress.dictionary` (torch-free format pieces); the encoder side in torch:
:mod:`~inrkit.compress.sparse` (OMP transform, :mod:`~inrkit.compress.omp`),
:mod:`~inrkit.compress.finetune`, :mod:`~inrkit.compress.qat` (quantisation-aware training),
:mod:`~inrkit.compress.encoder`, :mod:`~inrkit.compress.model`
(``decode_model``) and :mod:`~inrkit.compress.api` (target search, files, images).

Names are loaded on first use, so ``import inrkit.compress.decoder`` never imports torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CODECS": "codecs", "Codec": "codecs", "CoinOptions": "codecs", "QuantOptions": "codecs",
    "Decoded": "decoder", "decode": "decoder", "decode_file": "decoder",
    "SinrOptions": "layout", "SparseLayer": "layout", "SparseModel": "layout", "RowModel": "layout",
    "pack": "container", "unpack": "container",
    "GENERATOR_NAME": "dictionary", "sensing_matrix": "dictionary",
    "sparse_code": "sparse",
    "finetune_codes": "finetune", "quantisation_aware": "qat",
    "compress_model": "encoder", "encode_coin": "encoder", "encode_quant": "encoder", "encode_sinr": "encoder",
    "decode_model": "model",
    "Compressed": "api", "compress_file": "api", "compress_to_target": "api", "decode_image": "api",
    "decompress_file": "api", "EncodeConfig": "api", "encode_image": "api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
