"""Neuron pruning: criteria (matrix level), model-level pruning, ID pruning.

``inrkit.prune.criteria`` works on raw weight matrices (any MLP, NeRF included);
``inrkit.prune.model`` applies a criterion (or ID) to an ``inrkit.models.MLP``
physically; ``inrkit.prune.interpolative`` is interpolative-decomposition pruning;
``prune_file`` is the library function behind ``inrkit prune``.
"""
from .criteria import METHODS, SCORE_METHODS, coreset_select, neuron_scores, select_neurons, sensitivity


def __getattr__(name: str):  # lazy: model-level helpers import the model and ID modules
    if name in ("prune_model", "prune_layer", "layer_weights", "domain_points", "ALL_METHODS"):
        from . import model
        return getattr(model, name)
    if name == "prune_file":
        from .api import prune_file
        return prune_file
    raise AttributeError(name)


__all__ = ["ALL_METHODS", "METHODS", "SCORE_METHODS", "coreset_select", "domain_points", "layer_weights",
           "neuron_scores", "prune_file", "prune_layer", "prune_model", "select_neurons", "sensitivity"]
