"""SINR compression of INRs (sparse codes over a seeded dictionary), baselines and the ``.inrz`` format."""
from .api import (Compressed, compress_file, compress_to_target, decode_image, decompress_file, encode_image,
                  finetune_codes)
from .codecs import (CODECS, SinrOptions, SparseLayer, SparseModel, compress_model, decode_model, encode_coin,
                     encode_quant, encode_sinr, sparse_code)
from .container import pack, unpack
from .dictionary import GENERATOR_NAME, sensing_matrix
from .omp import omp, to_dense

__all__ = [
    "CODECS", "GENERATOR_NAME", "Compressed", "SinrOptions", "SparseLayer", "SparseModel", "compress_file",
    "compress_model", "compress_to_target", "decode_image", "decode_model", "decompress_file", "encode_coin",
    "encode_image", "encode_quant", "encode_sinr", "finetune_codes", "omp", "pack", "sensing_matrix",
    "sparse_code", "to_dense", "unpack",
]
