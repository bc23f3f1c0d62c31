"""Meta-INR: meta-pretrain a SIREN initialisation on a sub-sampled volume series, then
fine-tune it to each full-resolution volume in a few steps (arXiv 2502.09669)."""
from inrkit.meta.batched import InnerAdamState, StackedModel, TaskBatch, adapt_tasks
from inrkit.meta.finetune import FinetuneConfig, FinetuneResult, encode_series, finetune, first_reaching
from inrkit.meta.pretrain import (
                                  PRESETS,
                                  MetaConfig,
                                  MetaResult,
                                  meta_step,
                                  meta_train,
                                  post_adaptation_loss,
                                  pretrain_members,
                                  pretrain_plain,
                                  subsample,
)
from inrkit.meta.simulate import generate_series, simulate_grayscott, simulate_vortex, write_series
from inrkit.meta.tsne import tsne_embedding, tsne_plot, weight_vectors

__all__ = [
    "PRESETS", "FinetuneConfig", "FinetuneResult", "InnerAdamState", "MetaConfig", "MetaResult", "StackedModel",
    "TaskBatch",
    "adapt_tasks", "encode_series", "finetune", "first_reaching", "generate_series", "meta_step", "meta_train",
    "post_adaptation_loss", "pretrain_members", "pretrain_plain", "simulate_grayscott", "simulate_vortex",
    "subsample", "tsne_embedding", "tsne_plot", "weight_vectors", "write_series",
]
