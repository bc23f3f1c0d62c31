"""Training: the one optimisation loop (:func:`fit`), its tasks and its checkpoint format."""
from inrkit.train.batched import StackedModel, StackedTask, fit_many, fit_stacked
from inrkit.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from inrkit.train.fit import Callback, FitConfig, FitResult, FitState, fit, lr_factor, num_params
from inrkit.train.task import PointTask, Task

__all__ = ["Callback", "Checkpoint", "FitConfig", "FitResult", "FitState", "PointTask", "StackedModel", "StackedTask",
           "Task", "fit", "fit_many", "fit_stacked", "load_checkpoint", "lr_factor", "num_params", "save_checkpoint"]
