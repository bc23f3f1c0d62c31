"""The shared model types (MLP, NeRF MLP, stacks of networks), their constructors, files and the pruning graph."""
from inrkit.models.io import MODEL_TYPES, expected_shapes, load_model, save_model, validate_header
from inrkit.models.mlp import ACTIVATIONS, ARCHITECTURES, MLP, build_model, ffn, finer, parse_hidden, siren
from inrkit.models.nerf_mlp import NeRFConfig, NeRFMLP, positional_encoding
from inrkit.models.stacked import StackedModel
from inrkit.models.surgery import (
    PrunableGroup,
    StateMap,
    add_neurons,
    find_group,
    fold_interpolation,
    group_weights,
    merge_state_maps,
    remove_neurons,
)

__all__ = [
    "ACTIVATIONS", "ARCHITECTURES", "MLP", "MODEL_TYPES", "NeRFConfig", "NeRFMLP", "PrunableGroup", "StackedModel",
    "StateMap",
    "add_neurons", "build_model", "expected_shapes", "ffn", "find_group", "finer", "fold_interpolation",
    "group_weights", "load_model", "merge_state_maps", "parse_hidden", "positional_encoding",
    "remove_neurons", "save_model", "siren", "validate_header",
]
