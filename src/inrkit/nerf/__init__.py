"""Radiance fields: Blender-format scenes, the NeRF MLP, volume rendering, training and pruning."""
from .model import NeRFConfig, NeRFMLP, load_nerf, positional_encoding, save_nerf
from .render import render_rays, sample_pdf, stratified_samples, volume_render
from .scene import Scene, SceneSplit, generate_scene, load_blender, pixel_rays, sphere_pose
from .prune import keep_nerf_neurons, prunable_layers, prune_and_train, prune_nerf
from .api import nerf_prune_file, nerf_render_file, nerf_train_file, synth_scene
from .train import TrainConfig, TrainResult, evaluate_nerf, render_image, render_turntable, train_nerf

__all__ = [
    "NeRFConfig", "NeRFMLP", "load_nerf", "save_nerf", "positional_encoding",
    "render_rays", "sample_pdf", "stratified_samples", "volume_render",
    "Scene", "SceneSplit", "generate_scene", "load_blender", "pixel_rays", "sphere_pose",
    "keep_nerf_neurons", "prunable_layers", "prune_and_train", "prune_nerf",
    "nerf_prune_file", "nerf_render_file", "nerf_train_file", "synth_scene",
    "TrainConfig", "TrainResult", "evaluate_nerf", "render_image", "render_turntable", "train_nerf",
]
