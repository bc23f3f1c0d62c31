"""Encoding an :class:`inrkit.models.MLP` with a registered codec (torch side of compression)."""
from __future__ import annotations

from typing import Any

import torch

from inrkit.compress.decode.layout import SparseModel
from inrkit.compress.encode.network import NETWORK_CODECS
from inrkit.models.mlp import MLP


def compress_model(model: MLP, codec: str = "sinr", *, signal: dict | None = None, extra: dict | None = None,
                   device: str | torch.device | None = None, **options: Any) -> bytes:
    """Compress ``model`` with a registered ``codec`` into ``.inrz`` bytes.

    Args:
        model: the network.
        codec: a name in :data:`inrkit.compress.NETWORK_CODECS` (``sinr``, ``quant``, ``coin``...).
        signal: signal metadata stored in the header (for ``decode`` to render it).
        extra: free-form metadata stored in the header.
        device: where a costly transform (OMP) runs.
        options: the codec's options (e.g. ``sparsity``, ``bits``); other codecs' options are ignored.
    """
    c = NETWORK_CODECS.get(codec)
    return c.encode(model, c.make_options(**options), signal=signal, extra=extra, device=device)


def encode_sinr(code: SparseModel, signal: dict | None = None, extra: dict | None = None) -> bytes:
    """Quantise and entropy-code a sparse-coded model (``sinr``) into ``.inrz`` bytes."""
    return NETWORK_CODECS.get("sinr").encode_prepared(code, code.options, signal, extra)


def encode_quant(model: MLP, bits: int = 8, signal: dict | None = None, extra: dict | None = None) -> bytes:
    """Uniform ``bits``-bit quantisation of every tensor, Brotli-coded (INRIC-style baseline)."""
    return compress_model(model, "quant", bits=bits, signal=signal, extra=extra)


def encode_coin(model: MLP, signal: dict | None = None, extra: dict | None = None) -> bytes:
    """Every tensor as raw float16, no entropy coding (COIN)."""
    return compress_model(model, "coin", signal=signal, extra=extra)
