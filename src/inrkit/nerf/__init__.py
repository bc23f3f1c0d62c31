"""Radiance fields: Blender-format scenes, the NeRF MLP and the grid field, volume rendering, training and pruning."""
from inrkit.nerf.api import nerf_prune_file, nerf_render_file, nerf_train_file, synth_scene
from inrkit.nerf.grid_field import GridNeRF, GridNeRFConfig
from inrkit.nerf.march import render_grid_rays
from inrkit.nerf.model import NeRFConfig, NeRFMLP, load_nerf, positional_encoding, save_nerf
from inrkit.nerf.prune import prunable_layers, prune_and_train, prune_nerf
from inrkit.nerf.render import render_rays, sample_pdf, stratified_samples, volume_render
from inrkit.nerf.scene import Scene, SceneSplit, generate_scene, load_blender, pixel_rays, sphere_pose
from inrkit.nerf.train import (
                               ARCHS,
                               RayTask,
                               TrainConfig,
                               TrainResult,
                               evaluate_nerf,
                               grid_field_config,
                               render_image,
                               render_turntable,
                               train_nerf,
)

__all__ = [
    "ARCHS", "GridNeRF", "GridNeRFConfig", "grid_field_config", "render_grid_rays",
    "NeRFConfig", "NeRFMLP", "load_nerf", "save_nerf", "positional_encoding",
    "render_rays", "sample_pdf", "stratified_samples", "volume_render",
    "Scene", "SceneSplit", "generate_scene", "load_blender", "pixel_rays", "sphere_pose",
    "prunable_layers", "prune_and_train", "prune_nerf",
    "nerf_prune_file", "nerf_render_file", "nerf_train_file", "synth_scene",
    "RayTask", "TrainConfig", "TrainResult", "evaluate_nerf", "render_image", "render_turntable", "train_nerf",
]
