"""The standalone ``.inrz`` decoder: NumPy, the standard library, Brotli and constriction only (no torch).

``decode(data)`` parses the container, checks every header field, reads and expands
every section (the codec of the file, from :data:`inrkit.compress.decode.network.DECODERS`,
decodes its layers), regenerates SINR's dictionary only after everything has been
read and checked, and returns float32 NumPy weights with the header. The arithmetic is
float64 in a fixed order, then one cast to float32, so the weights are the same bits on
every machine. Every problem is an :class:`inrkit.errors.InvalidFileError`.

    from inrkit.compress.decode.decoder import decode_file
    net = decode_file("image.inrz")      # net.weights[i]: [out, in] float32, net.header["signal"]
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Collection

import numpy as np

from inrkit.compress.decode.container import read_file, unpack, version_of
from inrkit.compress.decode.latent import FORMAT as LATENT_FORMAT
from inrkit.compress.decode.layout import (
    FORMAT,
    MAX_LAYERS,
    MAX_PARAMS,
    MAX_WIDTH,
    Sections,
    bad,
    read_int,
    read_qparams,
)
from inrkit.compress.decode.network import DECODERS, DecodedLayer
from inrkit.errors import InvalidFileError
from inrkit.limits import check_inrz_work

# a check of the header before any work: (header, widths) -> None, raising InvalidFileError
HeaderCheck = Callable[[dict[str, Any], list[int]], None]


@dataclass
class Decoded:
    """A decoded network as NumPy arrays.

    Args:
        header: the file's JSON header (``codec``, ``model``, ``params``, ``layers``, ``signal``, ``extra``).
        widths: layer widths ``[n_in, h_1, ..., n_out]``.
        activations: one activation name per layer.
        omegas: one frequency factor per layer.
        weights: ``W_i`` as float32 ``[out, in]``.
        biases: ``b_i`` as float32 ``[out]``.
        fourier: the Fourier-feature matrix ``[m, coord_dim]`` (float32), or ``None``.
        encoding: the grid encoding's record (``type``, ``dim``, ``levels``, ``features``, ``base``, ``finest``,
            ``table_size``, ``rows``), or ``None``.
        table: the grid's table ``[rows, features]`` (float32), or ``None``.
    """

    header: dict[str, Any]
    widths: list[int]
    activations: list[str]
    omegas: list[float]
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    fourier: np.ndarray | None
    encoding: dict[str, Any] | None = None
    table: np.ndarray | None = None

    @property
    def codec(self) -> str:
        """Name of the codec that wrote the file."""
        return str(self.header["codec"])


def check_architecture(arch: Any, activations: Collection[str] | None = None
                       ) -> tuple[list[int], list[str], list[float], list[int] | None]:
    """Validate the header's ``model`` record; returns widths, activations, omegas and the Fourier shape.

    Args:
        arch: the ``model`` record.
        activations: the allowed activation names (``None``: any short name).
    """
    if not isinstance(arch, dict):
        raise bad("'model' must be an object")
    widths, acts, omegas, fourier = (arch.get(k) for k in ("widths", "activations", "omegas", "fourier"))
    if not (isinstance(widths, list) and 2 <= len(widths) <= MAX_LAYERS + 1
            and all(type(w) is int and 1 <= w <= MAX_WIDTH for w in widths)):
        raise bad(f"'model.widths' must list 2 to {MAX_LAYERS + 1} sizes in [1, {MAX_WIDTH}]")
    n = len(widths) - 1
    if sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(n)) > MAX_PARAMS:
        raise bad("model too large")
    if not (isinstance(acts, list) and len(acts) == n and all(_known(a, activations) for a in acts)):
        allowed = list(activations) if activations is not None else "short activation names"
        raise bad(f"'model.activations' must list {n} of {allowed}")
    if not (isinstance(omegas, list) and len(omegas) == n and all(type(o) in (int, float) and math.isfinite(o)
                                                                  and abs(o) < 1e6 for o in omegas)):
        raise bad(f"'model.omegas' must list {n} finite numbers")
    if fourier is not None:
        if not (isinstance(fourier, list) and len(fourier) == 2 and all(type(x) is int for x in fourier)
                and 2 * fourier[0] == widths[0] and 1 <= fourier[1] <= 16):
            raise bad("'model.fourier' must be [widths[0] / 2, coord_dim]")
    return widths, acts, [float(o) for o in omegas], fourier


GRID_FIELDS = ("dim", "levels", "features", "base", "finest", "table_size", "rows")


def check_encoding(arch: dict, widths: list[int]) -> dict[str, Any] | None:
    """The header's grid encoding record, checked (integers in range, ``levels * features = widths[0]``,
    table size bounded); its consistency with the grid's shape is checked when the model is built."""
    enc = arch.get("encoding")
    if enc is None:
        return None
    if not isinstance(enc, dict) or enc.get("type") != "grid" or arch.get("fourier") is not None:
        raise bad("'model.encoding' must be a grid record (and no Fourier features)")
    for key in GRID_FIELDS:
        read_int(enc, key, 1, MAX_PARAMS, "model.encoding")
    if enc["dim"] > 4 or enc["levels"] * enc["features"] != widths[0] or enc["rows"] * enc["features"] > MAX_PARAMS:
        raise bad("'model.encoding' does not fit the first layer or is too large")
    if enc.get("q") is not None:
        read_qparams(enc, "q", "model.encoding")
    return enc


def _known(name: Any, allowed: Collection[str] | None) -> bool:
    if not isinstance(name, str):
        return False
    return name in allowed if allowed is not None else 0 < len(name) <= 32 and name.isidentifier()


def _check_records(header: dict, n: int) -> tuple[dict, list[dict]]:
    params, records = header.get("params"), header.get("layers")
    if not isinstance(params, dict) or not isinstance(records, list) or len(records) != n:
        raise bad("'params' must be an object and 'layers' one record per layer")
    if not isinstance(header.get("signal", {}), dict) or not isinstance(header.get("extra", {}), dict):
        raise bad("'signal' and 'extra' must be objects")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise bad(f"layers[{i}] must be an object")
    return params, records


def decode(data: bytes, activations: Collection[str] | None = None, check: HeaderCheck | None = None) -> Decoded:
    """Decode ``.inrz`` bytes into NumPy weights and the header.

    The work the file implies (decoded numbers, dictionaries, sparse reconstruction) is checked
    against its size (:func:`inrkit.limits.check_inrz_work`) before any section is expanded.

    Args:
        data: the whole file.
        activations: the activation names a caller can run (``None``: accept any short name).
        check: called with the header and the widths once they are validated, before any work
            (e.g. that the file holds an image of a sane size); raises ``InvalidFileError``.
    """
    header, sections = unpack(data)
    if header.get("format") == LATENT_FORMAT:
        raise InvalidFileError("the .inrz file holds a latent-grid image, not a network: decode it with "
                               "`inrkit decode FILE -o IMAGE.png`")
    if header.get("format") != FORMAT:
        raise bad(f"'format' is not {FORMAT!r}")
    name = header.get("codec")
    if not isinstance(name, str) or name not in DECODERS:
        raise bad(f"unknown codec {name!r}")
    widths, acts, omegas, fourier_shape = check_architecture(header.get("model"), activations)
    params, records = _check_records(header, len(widths) - 1)
    if check is not None:
        check(header, widths)
    codec = DECODERS.get(name)
    encoding = check_encoding(header["model"], widths)
    work = codec.work(params, records, widths)
    table_values = encoding["rows"] * encoding["features"] if encoding else 0
    check_inrz_work(len(data), values=work.values + table_values,
                    dictionaries=tuple(k1 * k2 for k1, k2 in work.dictionaries), recon=work.recon)
    reader = Sections(sections, version_of(data))
    layers = codec.decode(reader, params, records, widths)
    table = None
    if encoding is not None:
        count = encoding["rows"] * encoding["features"]
        bits = codec.table_bits(params)
        if bits is None:
            values = reader.raw((count,), "<f2").astype(np.float64)
        else:
            values = reader.quantised(count, bits, read_qparams(encoding, "q", "model.encoding"))
        table = values.astype(np.float32).reshape(encoding["rows"], encoding["features"])
        if not np.all(np.isfinite(table)):
            raise InvalidFileError("non-finite grid table")
    fourier = None
    if fourier_shape is not None:
        fourier = reader.raw(tuple(fourier_shape), "<f4").astype(np.float32)
        if not np.all(np.isfinite(fourier)):
            raise InvalidFileError("non-finite Fourier features")
    reader.done()
    weights, biases = _materialise(layers)
    return Decoded(header, widths, acts, omegas, weights, biases, fourier, encoding, table)


def _materialise(layers: list[DecodedLayer]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run the deferred reconstructions and cast to float32, rejecting non-finite values."""
    weights, biases = [], []
    for i, (w, b) in enumerate(layers):
        w64 = w() if callable(w) else w
        with np.errstate(over="ignore", invalid="ignore"):
            w32, b32 = w64.astype(np.float32), b.astype(np.float32)
        if not (np.all(np.isfinite(w32)) and np.all(np.isfinite(b32))):
            raise InvalidFileError(f"layer {i} decodes to non-finite values")
        weights.append(w32)
        biases.append(b32)
    return weights, biases


def decode_file(path: str | os.PathLike, activations: Collection[str] | None = None,
                check: HeaderCheck | None = None) -> Decoded:
    """:func:`decode` the ``.inrz`` file at ``path``."""
    return decode(read_file(path), activations, check)


__all__ = ["Decoded", "HeaderCheck", "check_architecture", "decode", "decode_file", "read_file"]
