"""Neuron pruning: criteria objects (registry ``CRITERIA``), model-level pruning on the pruning graph, ID.

``inrkit.prune.criteria`` holds the criteria (one registration each); ``inrkit.prune.model`` applies
one to the prunable groups of a model (MLP, NeRF MLP) through :mod:`inrkit.models.surgery`;
``inrkit.prune.interpolative`` is interpolative-decomposition pruning; ``prune_file`` is the
library function behind ``inrkit prune``.
"""
from inrkit.prune.criteria import (
    CRITERIA,
    Criterion,
    coreset_select,
    keep_count,
    neuron_scores,
    select_neurons,
    sensitivity,
)
from inrkit.prune.model import domain_points, layer_weights, prune_group, prune_layer, prune_model


def __getattr__(name: str):  # lazy: prune_file imports the file and signal modules
    if name in ("prune_file", "PruneConfig"):
        from inrkit.prune import api
        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["CRITERIA", "Criterion", "coreset_select", "domain_points", "keep_count", "layer_weights",
           "neuron_scores", "PruneConfig", "prune_file", "prune_group", "prune_layer", "prune_model", "select_neurons",
           "sensitivity"]
