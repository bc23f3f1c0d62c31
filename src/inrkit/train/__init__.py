"""Fitting an INR to a signal."""
from .fit import Callback, FitConfig, FitResult, FitState, fit, load_checkpoint, lr_factor, save_checkpoint

__all__ = ["Callback", "FitConfig", "FitResult", "FitState", "fit", "load_checkpoint", "lr_factor", "save_checkpoint"]
