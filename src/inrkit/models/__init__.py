"""The shared model type, its constructors, files and surgery."""
from .io import load_model, save_model
from .mlp import ACTIVATIONS, ARCHITECTURES, MLP, build_model, ffn, finer, parse_hidden, siren
from .surgery import fold_interpolation, keep_neurons

__all__ = [
    "ACTIVATIONS", "ARCHITECTURES", "MLP", "build_model", "ffn", "finer", "fold_interpolation",
    "keep_neurons", "load_model", "parse_hidden", "save_model", "siren",
]
