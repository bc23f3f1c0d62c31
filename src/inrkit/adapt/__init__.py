"""AIRe: adaptive INR training by densification, targeted weight decay and pruning.

``aire(signal, config)`` runs a schedule of stages (fit, densify, finetune, twd,
prune) in one Adam run; presets ``image`` (the paper's) and ``sdf`` live in
``presets/``; ``adapt_file`` is the library function behind ``inrkit adapt``.
Pruning uses the shared graph (:mod:`inrkit.models.surgery`) and the ``l1`` criterion of
:data:`inrkit.prune.CRITERIA`.
"""
from inrkit.adapt.api import adapt_file, resolve_config
from inrkit.adapt.config import STAGE_KINDS, AireConfig, Stage, config_from_dict, load_config, load_preset, preset_names
from inrkit.adapt.runner import AireResult, aire, model_for, run_schedule
from inrkit.adapt.surgery import densify
from inrkit.adapt.twd import TargetedWeightDecay, outgoing_l1, smallest_neurons

__all__ = [
    "AireConfig", "AireResult", "STAGE_KINDS", "Stage", "TargetedWeightDecay", "adapt_file", "aire",
    "config_from_dict", "densify", "load_config", "load_preset", "model_for", "outgoing_l1", "preset_names",
    "resolve_config", "run_schedule", "smallest_neurons",
]
