"""The codec registry: ``sinr``, ``quant`` and ``coin``, each registered once in :data:`CODECS`.

* ``sinr`` (SINR, arXiv 2503.19576): every weight matrix but the last is cut into
  vectors of length ``k1`` (its rows, or flattened blocks of ``block`` values for layers
  with fewer than 50 inputs); each vector is sparse-coded with ``s`` atoms of the seeded
  Gaussian dictionary ``A`` (``k1 x k2``) by OMP; the coefficients are quantised to
  ``bits`` bits, the supports stored as sorted gaps or bitmasks (whichever is smaller),
  biases and the last layer quantised to ``dense_bits``; every stream is entropy-coded
  (v2: range coding, bit packing or Brotli per stream, :mod:`inrkit.compress.entropy`; v1: Brotli).
* ``quant``: every tensor uniformly quantised to ``bits`` bits, entropy-coded.
* ``coin``: every tensor in float16, no entropy coding (COIN, Dupont et al. 2021).

This module imports NumPy only, so the decoder can use it without torch; the costly
encoder steps (OMP in :mod:`inrkit.compress.sparse`, fine-tuning in
:mod:`inrkit.compress.finetune`) are imported when a codec first needs them.

Adding a codec is one class here or anywhere else::

    class MyCodec(Codec):
        name = "mine"
        options_type = MyOptions               # a dataclass of the codec's parameters
        def encode_prepared(self, model, options, signal=None, extra=None) -> bytes: ...
        def decode(self, sections, params, records, widths) -> list[DecodedLayer]: ...

    CODECS.register(MyCodec.name, MyCodec())

after which ``compress_model``, ``compress_to_target``, ``decode_model``, the decoder and
the ``--codec`` choices of the CLI know it.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from inrkit.compress import coding
from inrkit.compress.container import pack, write_version
from inrkit.compress.dictionary import GENERATOR_NAME
from inrkit.compress.layout import (
    FORMAT,
    MAX_DICT,
    MAX_K2,
    DecodeWork,
    RowModel,
    Sections,
    SinrOptions,
    SparseLayer,
    SparseModel,
    architecture,
    as_array,
    bad,
    bias_section,
    byte_section,
    check_bits,
    coded_section,
    fourier_sections,
    quant_section,
    read_float,
    read_int,
    read_qparams,
    reconstruct,
    row_sections,
    table_section,
)
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import check_inrz_work
from inrkit.registry import Registry

if TYPE_CHECKING:
    from inrkit.models.mlp import MLP
    from inrkit.signals.base import Signal

# a decoded layer: (weight [out, in] or a deferred reconstruction of it, bias [out]), float64
DecodedLayer = tuple[Union[np.ndarray, Callable[[], np.ndarray]], np.ndarray]


class Codec:
    """Base of a codec: its name, its options dataclass, encode and decode.

    A subclass sets ``name`` and ``options_type`` and implements :meth:`encode_prepared`
    and :meth:`decode`; :meth:`prepare` (a costly transform the target search caches)
    and :meth:`finetune` are optional.

    Attributes:
        name: the registered name, stored in every file's header.
        options_type: dataclass of the codec's parameters (validated in ``__post_init__``).
        search: options :func:`inrkit.compress.compress_to_target` varies (``"bits"``, ``"sparsity"``).
        bits_per_param: rough rate, used to size a network for ``encode --bpp``.
        can_finetune: whether :meth:`finetune` does something.
    """

    name: str = ""
    options_type: type = object
    search: tuple[str, ...] = ()
    bits_per_param: float = 16.0
    can_finetune: bool = False

    def make_options(self, **values: Any) -> Any:
        """The codec's options from keyword values; ``None`` values and other codecs' options are dropped.

        Args:
            values: option values by name; a name no registered codec knows is an error.
        """
        unknown = set(values) - all_option_names() - _field_names(self.options_type)
        if unknown:
            raise InvalidInputError(f"unknown codec option(s) {sorted(unknown)}")
        own = _field_names(self.options_type)
        return self.options_type(**{k: v for k, v in values.items() if k in own and v is not None})

    def prepare(self, model: MLP, options: Any, device: Any = None) -> Any:
        """The costly part of encoding (none by default: the model itself)."""
        return model

    def finetune(self, prepared: Any, signal: Signal, steps: int, lr: float, device: Any = None) -> Any:
        """Improve ``prepared`` on ``signal`` before writing (nothing by default)."""
        return prepared

    def qat_bits(self, options: Any) -> int | None:
        """Bit depth :meth:`qat` trains for (default: the options' ``bits``; ``None``: float16)."""
        bits = getattr(options, "bits", None)
        return None if bits is None else int(bits)

    def qat_options(self, options: Any) -> Any:
        """The options that store what :meth:`qat` learned (default: ``options``)."""
        return options

    def qat(self, model: MLP, signal: Signal, options: Any, steps: int, lr: float, device: Any = None,
            progress: bool = False) -> RowModel:
        """Quantisation-aware fine-tuning (:func:`inrkit.compress.qat.quantisation_aware`) for these options."""
        from inrkit.compress.qat import ROW_BITS, quantisation_aware

        return quantisation_aware(model, signal, self.qat_bits(options), steps, lr,
                                  row_bits=getattr(options, "row_bits", ROW_BITS), device=device, progress=progress)

    def encode_prepared(self, prepared: Any, options: Any, signal: dict | None = None,
                        extra: dict | None = None) -> bytes:
        """``.inrz`` bytes of a prepared model."""
        raise NotImplementedError

    def encode(self, model: MLP, options: Any = None, *, signal: dict | None = None, extra: dict | None = None,
               device: Any = None) -> bytes:
        """Compress ``model`` into ``.inrz`` bytes.

        Args:
            model: the network.
            options: an ``options_type`` instance (default options when ``None``).
            signal: signal metadata stored in the header.
            extra: free-form metadata stored in the header.
            device: where a costly transform runs.
        """
        options = self.make_options() if options is None else options
        return self.encode_prepared(self.prepare(model, options, device), options, signal, extra)

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        """Read every layer's weight and bias from ``sections`` (float64), validating as it goes."""
        raise NotImplementedError

    def work(self, params: dict, records: list[dict], widths: list[int]) -> DecodeWork:
        """What :meth:`decode` will cost, from the header alone (default: each weight and bias decoded once)."""
        return DecodeWork(values=sum(o * (n + 1) for o, n in (shape_of(widths, i) for i in range(len(records)))))

    def report(self, options: Any) -> dict[str, Any]:
        """The chosen parameters, as reported by ``compress_to_target``."""
        return {}

    def table_bits(self, params: dict) -> int | None:
        """Bit depth of a grid encoding's table (from the validated ``params``); None: raw float16."""
        return None

    def pack(self, model: MLP, params: dict, records: list[dict], sections: list[bytes], signal: dict | None,
             extra: dict | None) -> bytes:
        """The container around the codec's sections (a grid's table, then the Fourier features, go last)."""
        arch = architecture(model)
        tables, q = table_section(model, self.table_bits(params))
        if tables:
            arch["encoding"]["q"] = q
        if write_version() >= 2 and signal:  # v2 keeps what decoding and the signal checks use, not the file name
            signal = {k: v for k, v in signal.items() if k != "name"}
        header = {"format": FORMAT, "codec": self.name, "model": arch, "params": params,
                  "layers": records, "signal": signal or {}, "extra": extra or {}}
        data = pack(header, sections + tables + fourier_sections(model))
        work = self.work(params, records, model.widths)
        encoding = getattr(model, "encoding", None)
        table_values = int(encoding.table.numel()) if encoding is not None else 0
        try:  # never write a file the decoder would refuse
            check_inrz_work(len(data), values=work.values + table_values, recon=work.recon,
                            dictionaries=tuple(k1 * k2 for k1, k2 in work.dictionaries))
        except InvalidFileError as exc:
            raise InvalidInputError(f"these codec settings make a file the decoder refuses: {exc} "
                                    "(lower --overcomplete or raise --sparsity)") from None
        return data


CODECS: Registry[Codec] = Registry("codec")


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)} if hasattr(cls, "__dataclass_fields__") else set()


def all_option_names() -> set[str]:
    """Option names of every registered codec."""
    return set().union(*(_field_names(c.options_type) for _, c in CODECS.items()))


def shape_of(widths: list[int], i: int) -> tuple[int, int]:
    """Shape ``[out, in]`` of layer ``i``."""
    return widths[i + 1], widths[i]


# ------------------------------------------------------------------ sinr
class SinrCodec(Codec):
    """SINR: sparse codes over a seeded Gaussian dictionary, quantised and Brotli-coded."""

    name = "sinr"
    options_type = SinrOptions
    search = ("bits", "sparsity")
    bits_per_param = 2.5
    can_finetune = True

    def prepare(self, model: MLP | RowModel, options: SinrOptions, device: Any = None) -> SparseModel:
        from inrkit.compress.sparse import sparse_code

        return sparse_code(model.model if isinstance(model, RowModel) else model, options, device)

    def finetune(self, prepared: SparseModel, signal: Signal, steps: int, lr: float, device: Any = None,
                 progress: bool = False) -> SparseModel:
        from inrkit.compress.finetune import finetune_codes

        return finetune_codes(prepared, signal, steps, lr, device=device, progress=progress)

    def encode_prepared(self, prepared: SparseModel, options: SinrOptions, signal: dict | None = None,
                        extra: dict | None = None) -> bytes:
        model, bits, dbits = prepared.model, int(options.bits), options.dense()
        sections: list[bytes] = []
        records = []
        n = model.num_layers
        for i in range(n):
            layer = prepared.layers[i] if i < n - 1 else None
            rec: dict[str, Any] = {}
            if layer is None:
                sec, rec["w"] = quant_section(as_array(model.weights[i]), dbits)
                sections.append(sec)
            else:
                sections += _sparse_sections(layer, bits, rec)
            sec, rec["b"] = quant_section(as_array(model.biases[i]), dbits)
            sections.append(sec)
            records.append(rec)
        params = {"bits": bits, "dense_bits": dbits, "seed": int(options.seed), "generator": GENERATOR_NAME}
        return self.pack(model, params, records, sections, signal, extra)

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        bits = read_int(params, "bits", 1, coding.MAX_BITS, "params")
        dbits = read_int(params, "dense_bits", 1, coding.MAX_BITS, "params")
        seed = read_int(params, "seed", 0, 2**63 - 1, "params")
        if params.get("generator") != GENERATOR_NAME:
            raise bad(f"unknown dictionary generator {params.get('generator')!r}")
        out: list[DecodedLayer] = []
        for i, rec in enumerate(records):
            where, shape = f"layers[{i}]", shape_of(widths, i)
            w: np.ndarray | Callable[[], np.ndarray]
            if "coef" in rec and i < len(records) - 1:
                w = _read_sparse(rec, sections, shape, bits, seed, where)
            else:
                w = sections.quantised(shape[0] * shape[1], dbits, read_qparams(rec, "w", where)).reshape(shape)
            out.append((w, sections.quantised(shape[0], dbits, read_qparams(rec, "b", where))))
        return out

    def work(self, params: dict, records: list[dict], widths: list[int]) -> DecodeWork:
        work = DecodeWork()
        for i, rec in enumerate(records):
            out, inp = shape_of(widths, i)
            if "coef" in rec and i < len(records) - 1:
                _, k1, k2, s, n = _sparse_dims(rec, (out, inp), f"layers[{i}]")
                work.values += n * s + out
                work.dictionaries.add((k1, k2))
                work.recon += n * s * k1 + n * k2
            else:
                work.values += out * (inp + 1)
        return work

    def table_bits(self, params: dict) -> int | None:
        return read_int(params, "dense_bits", 1, coding.MAX_BITS, "params")

    def report(self, options: SinrOptions) -> dict[str, Any]:
        return {"sparsity": options.sparsity, "bits": options.bits, "dense_bits": options.dense(),
                "overcomplete": options.overcomplete}


def _sparse_sections(layer: SparseLayer, bits: int, rec: dict[str, Any]) -> list[bytes]:
    """Support and coefficient sections of a coded layer; fills its header record ``rec``."""
    gaps = coding.encode_gaps(layer.idx)
    mask = coding.encode_bitmask(layer.idx, layer.k2)
    cand = {"gaps": (coding.brotli_compress(gaps), len(gaps)),
            "bitmask": (coding.brotli_compress(mask), coding.bitmask_size(layer.idx.shape[0], layer.k2))}
    kind = min(cand, key=lambda k: len(cand[k][0]) if cand[k][1] <= coding.max_expansion(len(cand[k][0]))
               else math.inf)
    if write_version() >= 2:  # each stream stored, Brotli or (gaps) range-coded: the smaller of the two supports
        v2 = {"gaps": byte_section(gaps, varints=True), "bitmask": byte_section(mask)}
        kind = min(v2, key=lambda k: len(v2[k]))
        support = v2[kind]
    else:
        coded_section(gaps if kind == "gaps" else mask)  # raises if neither passes the decoder's ratio guard
        support = cand[kind][0]
    coef_sec, rec["coef"] = quant_section(layer.coef, bits)
    rec.update(mode=layer.mode, k1=layer.k1, k2=layer.k2, s=int(layer.idx.shape[1]), support=kind)
    if kind == "gaps":
        rec["support_bytes"] = cand[kind][1]
    return [support, coef_sec]


def _sparse_dims(rec: dict, shape: tuple[int, int], where: str) -> tuple[str, int, int, int, int]:
    """``(mode, k1, k2, s, vectors)`` of a coded layer's record, checked against the layer's shape."""
    mode = rec.get("mode")
    if mode not in ("rows", "blocks"):
        raise bad(f"{where}.mode must be 'rows' or 'blocks'")
    out, inp = shape
    k1 = read_int(rec, "k1", 3, MAX_K2 - 1, where)
    if (mode == "rows" and k1 != inp) or (mode == "blocks" and k1 > out * inp):
        raise bad(f"{where}.k1 does not fit the layer shape")
    k2 = read_int(rec, "k2", k1, MAX_K2 - 1, where)
    if k1 * k2 > MAX_DICT:
        raise bad(f"{where}: dictionary too large")
    s = read_int(rec, "s", 1, k1 - 1, where)
    return str(mode), k1, k2, s, out if mode == "rows" else math.ceil(out * inp / k1)


def _read_sparse(rec: dict, sections: Sections, shape: tuple[int, int], bits: int, seed: int,
                 where: str) -> Callable[[], np.ndarray]:
    """Read a coded layer; the dictionary is generated later, once every section has been checked."""
    mode, k1, k2, s, n = _sparse_dims(rec, shape, where)
    kind = rec.get("support")
    if kind == "gaps":
        nbytes = read_int(rec, "support_bytes", n * s, 2 * n * s, where)
        idx = coding.decode_gaps(sections.next(nbytes), n, s, k2)
    elif kind == "bitmask":
        idx = coding.decode_bitmask(sections.next(coding.bitmask_size(n, k2)), n, s, k2)
    else:
        raise bad(f"{where}.support must be 'gaps' or 'bitmask'")
    coef = sections.quantised(n * s, bits, read_qparams(rec, "coef", where)).reshape(n, s)
    return functools.partial(reconstruct, SparseLayer(mode, k1, k2, idx, coef), coef, seed, shape)


CODECS.register(SinrCodec.name, SinrCodec())


# ------------------------------------------------------------------ quant
@dataclass
class QuantOptions:
    """Parameters of the ``quant`` codec.

    Args:
        bits: bit depth of every tensor.
        per_row: one step per weight row (signed codes, steps ``k * base`` with ``k`` coded in ``row_bits``
            bits; biases per tensor), set from each row's range; quantisation-aware training learns them
            (``qat_steps`` turns it on). Default: one ``[lo, step]`` per tensor.
        row_bits: bit depth of the per-row step multipliers.
    """

    bits: int = 8
    per_row: bool = False
    row_bits: int = 8

    def __post_init__(self) -> None:
        check_bits(self.bits, self.row_bits)
        if self.per_row and self.bits < 2:
            raise InvalidInputError("per-row quantisation needs at least 2 bits")


class QuantCodec(Codec):
    """Every tensor uniformly quantised to ``bits`` bits (per tensor or per weight row), entropy-coded
    (INRIC-style baseline; with ``qat_steps``, INRIC's quantisation-aware training)."""

    name = "quant"
    options_type = QuantOptions
    search = ("bits",)
    bits_per_param = 6.0

    def prepare(self, model: MLP | RowModel, options: QuantOptions, device: Any = None) -> RowModel:
        """The model with its rows' steps: learned ones (a QAT'd :class:`RowModel` of these bits), else ``None``."""
        if isinstance(model, RowModel):
            return model if model.steps is not None and model.bits == options.bits else RowModel(model.model)
        return RowModel(model)

    def encode_prepared(self, prepared: MLP | RowModel, options: QuantOptions, signal: dict | None = None,
                        extra: dict | None = None) -> bytes:
        prepared = prepared if isinstance(prepared, RowModel) else RowModel(prepared)
        model, bits = prepared.model, int(options.bits)
        rows = options.per_row
        sections, records = [], []
        for i, (w, b) in enumerate(zip(model.weights, model.biases)):
            rec: dict[str, Any] = {}
            if rows:
                steps = prepared.steps[i] if prepared.steps is not None else None
                secs, rec["wr"] = row_sections(as_array(w), bits, options.row_bits, steps)
                sec, rec["b"] = bias_section(as_array(b), bits, prepared.bias_steps[i] if prepared.bias_steps else None)
                sections += secs + [sec]
            else:
                sec, rec["w"] = quant_section(as_array(w), bits)
                sb, rec["b"] = quant_section(as_array(b), bits)
                sections += [sec, sb]
            records.append(rec)
        params: dict[str, Any] = {"bits": bits}
        if rows:
            params["row_bits"] = int(options.row_bits)
        return self.pack(model, params, records, sections, signal, extra)

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        rows = "row_bits" in params
        bits = read_int(params, "bits", 2 if rows else 1, coding.MAX_BITS, "params")
        row_bits = read_int(params, "row_bits", 1, coding.MAX_BITS, "params") if rows else 0
        out: list[DecodedLayer] = []
        for i, rec in enumerate(records):
            where, (o, n) = f"layers[{i}]", shape_of(widths, i)
            if rows:
                w = sections.rows((o, n), bits, row_bits, read_float(rec, "wr", 1e20, where))  # |w| < 1e30
            else:
                w = sections.quantised(o * n, bits, read_qparams(rec, "w", where)).reshape(o, n)
            out.append((w, sections.quantised(o, bits, read_qparams(rec, "b", where))))
        return out

    def work(self, params: dict, records: list[dict], widths: list[int]) -> DecodeWork:
        rows = "row_bits" in params  # the row step codes: one value more per row
        return DecodeWork(values=sum(o * (n + 1 + rows) for o, n in (shape_of(widths, i) for i in range(len(records)))))

    def table_bits(self, params: dict) -> int | None:
        return read_int(params, "bits", 1, coding.MAX_BITS, "params")

    def qat_options(self, options: QuantOptions) -> QuantOptions:
        return replace(options, per_row=True)

    def report(self, options: QuantOptions) -> dict[str, Any]:
        return {"bits": options.bits, **({"per_row": True, "row_bits": options.row_bits} if options.per_row else {})}


CODECS.register(QuantCodec.name, QuantCodec())


# ------------------------------------------------------------------ coin
@dataclass
class CoinOptions:
    """The ``coin`` codec has no parameters."""


class CoinCodec(Codec):
    """Every tensor as raw float16, no entropy coding (COIN)."""

    name = "coin"
    options_type = CoinOptions

    def qat_bits(self, options: CoinOptions) -> int | None:
        return None  # float16

    def encode_prepared(self, prepared: MLP | RowModel, options: CoinOptions, signal: dict | None = None,
                        extra: dict | None = None) -> bytes:
        prepared = prepared.model if isinstance(prepared, RowModel) else prepared
        sections = []
        for w, b in zip(prepared.weights, prepared.biases):
            sections += [as_array(w).astype("<f2").tobytes(), as_array(b).astype("<f2").tobytes()]
        records: list[dict] = [{} for _ in range(prepared.num_layers)]
        return self.pack(prepared, {}, records, sections, signal, extra)

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        out: list[DecodedLayer] = []
        for i in range(len(records)):
            shape = shape_of(widths, i)
            w = sections.raw(shape, "<f2").astype(np.float64)
            out.append((w, sections.raw((shape[0],), "<f2").astype(np.float64)))
        return out


CODECS.register(CoinCodec.name, CoinCodec())


# ------------------------------------------------------------------ grid
@dataclass
class GridCodecOptions:
    """The ``grid`` codec's options live in :class:`inrkit.compress.latent.GridOptions` (``--lambda``, ``--preset``)."""


class GridCodec(Codec):
    """The latent-grid image codec (Cool-chic/C3; :mod:`inrkit.compress.latent`, file format and decoder in
    :mod:`inrkit.compress.latent_codec`). It codes images, not networks: ``inrkit encode IMAGE --codec grid``
    and ``inrkit decode``; as a model-file codec it refuses."""

    name = "grid"
    options_type = GridCodecOptions
    bits_per_param = 8.0

    def encode_prepared(self, prepared: MLP, options: GridCodecOptions, signal: dict | None = None,
                        extra: dict | None = None) -> bytes:
        raise InvalidInputError("the grid codec encodes images, not model files: use "
                                "`inrkit encode IMAGE -o OUT.inrz --codec grid`")

    def decode(self, sections: Sections, params: dict, records: list[dict], widths: list[int]) -> list[DecodedLayer]:
        raise InvalidFileError("a grid .inrz file holds an image, not a network: use `inrkit decode`")


CODECS.register(GridCodec.name, GridCodec())

__all__ = ["CODECS", "Codec", "CoinCodec", "CoinOptions", "DecodedLayer", "GridCodec", "GridCodecOptions", "QuantCodec",
           "QuantOptions", "SinrCodec", "SinrOptions"]
