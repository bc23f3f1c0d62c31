"""AIRe: adaptive INR training by densification, targeted weight decay and pruning.

``adapt(signal, config)`` runs a schedule of stages (fit, densify, finetune, twd,
prune) in one Adam run; presets ``image`` (the paper's) and ``sdf`` live in
``presets/``; ``adapt_file`` is the library function behind ``inrkit adapt``.
"""
from .api import adapt_file, resolve_config
from .config import AdaptConfig, Stage, STAGE_KINDS, config_from_dict, load_config, load_preset, preset_names
from .runner import AdaptResult, adapt, model_for, run_schedule
from .surgery import densify, prune_neurons
from .twd import TargetedWeightDecay, outgoing_l1, smallest_neurons

__all__ = [
    "AdaptConfig", "AdaptResult", "STAGE_KINDS", "Stage", "TargetedWeightDecay", "adapt", "adapt_file",
    "config_from_dict", "densify", "load_config", "load_preset", "model_for", "outgoing_l1", "preset_names",
    "prune_neurons", "resolve_config", "run_schedule", "smallest_neurons",
]
