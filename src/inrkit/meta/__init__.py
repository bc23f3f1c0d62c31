"""Meta-INR: meta-pretrain a SIREN initialisation on a sub-sampled volume series, then
adapt it to each full-resolution volume in a few steps (arXiv 2502.09669)."""
from .adapt import AdaptConfig, AdaptResult, adapt, encode_series, first_reaching
from .pretrain import (PRESETS, MetaConfig, MetaResult, meta_step, meta_train, post_adaptation_loss,
                       pretrain_members, pretrain_plain, subsample)
from .simulate import generate_series, simulate_grayscott, simulate_vortex, write_series
from .tsne import tsne_embedding, tsne_plot, weight_vectors

__all__ = [
    "PRESETS", "AdaptConfig", "AdaptResult", "MetaConfig", "MetaResult", "adapt", "encode_series",
    "first_reaching", "generate_series", "meta_step", "meta_train", "post_adaptation_loss",
    "pretrain_members", "pretrain_plain", "simulate_grayscott", "simulate_vortex", "subsample",
    "tsne_embedding", "tsne_plot", "weight_vectors", "write_series",
]
