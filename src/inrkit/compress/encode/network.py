"""Network codecs: ``sinr``, ``quant`` and ``coin`` compress a model file; each registered once in
:data:`NETWORK_CODECS`.

A :class:`NetworkCodec` is the encode half (options, the costly transform, quantisation-aware training, writing)
on top of its decode half (:mod:`inrkit.compress.decode.network`, NumPy only). Adding a codec is one class and one
call::

    class MyCodec(NetworkCodec):
        name = "mine"
        options_type = MyOptions               # a dataclass of the codec's parameters
        def encode_prepared(self, model, options, signal=None, extra=None) -> bytes: ...
        def decode(self, sections, params, records, widths) -> list[DecodedLayer]: ...

    register_network_codec(MyCodec())

after which ``compress_model``, ``compress_to_target``, ``decode_model``, the standalone decoder and the ``--codec``
choices of ``inrkit compress`` know it. The costly encoder steps (OMP in :mod:`inrkit.compress.encode.sparse`,
fine-tuning in :mod:`inrkit.compress.encode.finetune`, QAT in :mod:`inrkit.compress.encode.qat`) are imported when a
codec first needs them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from inrkit.compress.decode import coding
from inrkit.compress.decode.container import pack, write_version
from inrkit.compress.decode.dictionary import GENERATOR_NAME
from inrkit.compress.decode.layout import (
    FORMAT,
    RowModel,
    SinrOptions,
    SparseLayer,
    SparseModel,
    architecture,
    as_array,
    bias_section,
    byte_section,
    check_bits,
    coded_section,
    fourier_sections,
    quant_section,
    row_sections,
    table_section,
)
from inrkit.compress.decode.network import (
    DECODERS,
    CoinDecoder,
    DecodedLayer,
    NetworkDecoder,
    QuantDecoder,
    SinrDecoder,
    shape_of,
)
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import check_inrz_work
from inrkit.registry import Registry

if TYPE_CHECKING:
    from inrkit.models.mlp import MLP
    from inrkit.signals.base import Signal


class NetworkCodec(NetworkDecoder):
    """A network codec: its name, its options dataclass, encode (here) and decode (:class:`NetworkDecoder`).

    A subclass sets ``name`` and ``options_type`` and implements :meth:`encode_prepared`
    and :meth:`decode`; :meth:`prepare` (a costly transform the target search caches)
    and :meth:`finetune` are optional.

    Attributes:
        name: the registered name, stored in every file's header.
        options_type: dataclass of the codec's parameters (validated in ``__post_init__``).
        search: options :func:`inrkit.compress.compress_to_target` varies (``"bits"``, ``"sparsity"``).
        bits_per_param: rough rate, used to size a network for ``encode --bpp``.
        can_finetune: whether :meth:`finetune` does something.
        safe_options: the searched options ``compress`` uses without a signal or a target (a conservative
            setting: docs/compress.md, bench/results/compress_default_rule.json).
    """

    options_type: type = object
    search: tuple[str, ...] = ()
    bits_per_param: float = 16.0
    can_finetune: bool = False
    safe_options: dict[str, Any] = {}

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
        """Quantisation-aware fine-tuning (:func:`inrkit.compress.encode.qat.quantisation_aware`) for these options."""
        from inrkit.compress.encode.qat import ROW_BITS, quantisation_aware

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


    def report(self, options: Any) -> dict[str, Any]:
        """The chosen parameters, as reported by ``compress_to_target``."""
        return {}


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


NETWORK_CODECS: Registry[NetworkCodec] = Registry("codec")
"""The network codecs by name (``inrkit compress --codec``)."""


def register_network_codec(codec: NetworkCodec) -> NetworkCodec:
    """Register ``codec`` in :data:`NETWORK_CODECS`, and its decode half in the decoder's
    :data:`~inrkit.compress.decode.network.DECODERS` (where a built-in decode half is already there)."""
    NETWORK_CODECS.register(codec.name, codec)
    if codec.name not in DECODERS:
        DECODERS.register(codec.name, codec)
    return codec


def unregister_network_codec(name: str) -> None:
    """Remove a codec :func:`register_network_codec` added (tests)."""
    codec = NETWORK_CODECS.get(name) if name in NETWORK_CODECS else None
    NETWORK_CODECS.unregister(name)
    if codec is not None and name in DECODERS and DECODERS.get(name) is codec:
        DECODERS.unregister(name)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)} if hasattr(cls, "__dataclass_fields__") else set()


def all_option_names() -> set[str]:
    """Option names of every registered network codec."""
    return set().union(*(_field_names(c.options_type) for _, c in NETWORK_CODECS.items()))


# ------------------------------------------------------------------ sinr
class SinrCodec(SinrDecoder, NetworkCodec):
    """SINR: sparse codes over a seeded Gaussian dictionary, quantised and entropy-coded."""

    options_type = SinrOptions
    search = ("bits", "sparsity")
    bits_per_param = 2.5
    can_finetune = True
    safe_options = {"sparsity": 0.48, "bits": 10}

    def prepare(self, model: MLP | RowModel, options: SinrOptions, device: Any = None) -> SparseModel:
        from inrkit.compress.encode.sparse import sparse_code

        return sparse_code(model.model if isinstance(model, RowModel) else model, options, device)


    def finetune(self, prepared: SparseModel, signal: Signal, steps: int, lr: float, device: Any = None,
                 progress: bool = False) -> SparseModel:
        from inrkit.compress.encode.finetune import finetune_codes

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


register_network_codec(SinrCodec())


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


class QuantCodec(QuantDecoder, NetworkCodec):
    """Every tensor uniformly quantised to ``bits`` bits (per tensor or per weight row), entropy-coded
    (INRIC-style baseline; with ``qat_steps``, INRIC's quantisation-aware training)."""

    options_type = QuantOptions
    search = ("bits",)
    bits_per_param = 6.0
    safe_options = {"bits": 12}

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


    def qat_options(self, options: QuantOptions) -> QuantOptions:
        return replace(options, per_row=True)


    def report(self, options: QuantOptions) -> dict[str, Any]:
        return {"bits": options.bits, **({"per_row": True, "row_bits": options.row_bits} if options.per_row else {})}


register_network_codec(QuantCodec())


# ------------------------------------------------------------------ coin
@dataclass
class CoinOptions:
    """The ``coin`` codec has no parameters."""


class CoinCodec(CoinDecoder, NetworkCodec):
    """Every tensor as raw float16, no entropy coding (COIN)."""

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


register_network_codec(CoinCodec())

__all__ = ["NETWORK_CODECS", "CoinCodec", "CoinOptions", "DecodedLayer", "NetworkCodec", "QuantCodec", "QuantOptions",
           "SinrCodec", "SinrOptions", "all_option_names", "register_network_codec", "shape_of",
           "unregister_network_codec"]
