"""The torch side of decoding: ``.inrz`` bytes to an :class:`inrkit.models.MLP` (a thin layer over the decoder)."""
from __future__ import annotations

import torch

from inrkit.compress.decode.decoder import Decoded, HeaderCheck, decode
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models.grid import GridConfig, GridEncoding
from inrkit.models.mlp import ACTIVATIONS, MLP


def to_mlp(decoded: Decoded) -> MLP:
    """An :class:`MLP` holding the decoded weights (the same float32 bits).

    Args:
        decoded: the output of :func:`inrkit.compress.decode.decoder.decode`.
    """
    fourier = None if decoded.fourier is None else torch.from_numpy(decoded.fourier.copy())
    encoding = None
    if decoded.encoding is not None and decoded.table is not None:
        fields = {k: v for k, v in decoded.encoding.items() if k in GridConfig.__dataclass_fields__}
        try:
            config = GridConfig(**fields)
        except InvalidInputError as exc:
            raise InvalidFileError(f"invalid .inrz grid encoding: {exc}") from None
        if decoded.table.shape != (config.num_entries(), config.features):
            raise InvalidFileError(f"invalid .inrz grid encoding: a table of {decoded.table.shape[0]} rows; the grid "
                                   f"needs {config.num_entries()}")
        encoding = GridEncoding(config)
        with torch.no_grad():
            encoding.table.copy_(torch.from_numpy(decoded.table))
    model = MLP(decoded.widths, decoded.activations, decoded.omegas, fourier=fourier, encoding=encoding)
    with torch.no_grad():
        for i, (w, b) in enumerate(zip(decoded.weights, decoded.biases)):
            model.weights[i].copy_(torch.from_numpy(w))
            model.biases[i].copy_(torch.from_numpy(b))
    return model


def decode_model(data: bytes, check: HeaderCheck | None = None) -> tuple[MLP, dict]:
    """Decode ``.inrz`` bytes into ``(model, header)``; every problem is an ``InvalidFileError``.

    Args:
        data: the whole ``.inrz`` file.
        check: a check of the header and widths run before any decoding work (see ``decoder.decode``).
    """
    decoded = decode(data, activations=ACTIVATIONS, check=check)
    return to_mlp(decoded), decoded.header
