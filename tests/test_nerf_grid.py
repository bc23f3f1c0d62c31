"""The grid-encoded radiance field: SH encoding, packed marching, compositing, occupancy grid, training, files, CLI."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from inrkit.cli import main
from inrkit.errors import InvalidInputError
from inrkit.nerf import TrainConfig, generate_scene, load_blender, load_nerf, save_nerf, train_nerf, volume_render
from inrkit.nerf.api import _train_config
from inrkit.nerf.grid_field import GridNeRF, GridNeRFConfig, sh_encoding
from inrkit.nerf.march import composite, march, render_grid_rays
from inrkit.nerf.train import ARCH_DEFAULTS, evaluate_nerf, grid_field_config, grid_samples

SMALL = dict(levels=4, base=4, finest=16, table_size=1 << 12, hidden=16, geo_features=7, occupancy_res=8)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("gscene") / "s", size=16, views=10, test_views=2, seed=5)


def test_spherical_harmonics_are_orthonormal():
    d = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    y = sh_encoding(d.double())
    gram = 4 * math.pi * (y.T @ y) / len(d)  # Monte Carlo of the integral over the sphere
    assert torch.allclose(gram, torch.eye(16, dtype=gram.dtype), atol=0.03)


def test_packed_compositing_matches_dense_volume_rendering():
    gen = torch.Generator().manual_seed(1)
    rays, samples, step = 5, 7, 0.1
    sigma = torch.rand(rays, samples, generator=gen) * 5
    rgb = torch.rand(rays, samples, 3, generator=gen)
    keep = torch.rand(rays, samples, generator=gen) > 0.3
    keep[2] = False  # a ray with no samples renders the background
    ray, _ = keep.nonzero(as_tuple=True)
    packed = composite(sigma[keep], rgb[keep], ray, rays, step)
    t = torch.arange(samples, dtype=torch.float32)[None].expand(rays, samples) * step
    dense = volume_render(torch.where(keep, sigma, 0.0), rgb, torch.cat([t, t[:, -1:] + step], 1)[:, :samples],
                          torch.ones(rays))
    # the dense quadrature's last interval is infinite: compare with the last sample dropped from both
    keep[:, -1] = False
    ray, _ = keep.nonzero(as_tuple=True)
    packed = composite(sigma[keep], rgb[keep], ray, rays, step)
    dense = volume_render(torch.where(keep, sigma, 0.0), rgb, t, torch.ones(rays))
    assert torch.allclose(packed["rgb"], dense["rgb"], atol=1e-5)
    assert torch.allclose(packed["acc"], dense["acc"], atol=1e-5)
    assert packed["acc"][2] == 0 and torch.allclose(packed["rgb"][2], torch.ones(3))


def test_marching_skips_unoccupied_cells():
    model = GridNeRF(GridNeRFConfig(**SMALL), seed=0)
    o = torch.tensor([[-3.0, 0.1, 0.1], [0.1, -3.0, 0.1]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    near, far = torch.zeros(2), torch.full((2,), 10.0)
    step = 0.05
    everything = march(model, o, d, near, far, step)
    assert len(everything["ray"]) == int(everything["candidates"]) == 2 * 60  # 3 units of box per ray
    model.occupied.zero_()
    model.occupied[model.cell_index(torch.tensor([[0.1, 0.1, 0.1]]))] = True  # one cell in the middle
    packed = march(model, o, d, near, far, step)
    inside = ((packed["pts"] - 0.1).abs() <= 1.5 / 8 * 2).all(-1)
    assert 0 < len(packed["ray"]) < 20 and inside.all()
    out = render_grid_rays(model, o, d, near, far, step)
    assert out["rgb"].shape == (2, 3) and out["samples"] == len(packed["ray"])


def test_arch_defaults_and_old_file_keys():
    meta = {"radius": 4.0, "focal": 138.9, "aabb": None}
    grid = TrainConfig().resolved("grid", meta)
    assert grid.steps == ARCH_DEFAULTS["grid"]["steps"] and grid.n_importance == 0 and grid.precrop_steps == 0
    assert grid.n_samples == grid_samples(meta) == round(math.sqrt(27) / (4.0 / 138.9))
    assert grid.fit_config().encoding_lr == grid.lr and grid.fit_config().adam_eps == 1e-15
    mlp = TrainConfig(steps=100).resolved("mlp")
    assert mlp.precrop_steps == 10 and mlp.n_importance == ARCH_DEFAULTS["mlp"]["n_importance"]
    assert grid_field_config(meta).finest == 128 and grid_field_config({**meta, "focal": 277.8}).finest == 256
    with pytest.raises(InvalidInputError):
        TrainConfig().resolved("nope")
    with pytest.raises(InvalidInputError):
        TrainConfig().fit_config()
    old = _train_config({"extra": {"train": {"iters": 5, "batch_rays": 64, "n_samples": 9, "n_importance": 3}}})
    assert old.batch_size == 64 and old.n_samples == 9 and old.n_importance == 3


def test_grid_training_improves_and_skips_empty_space(scene_dir, tmp_path):
    scene = load_blender(scene_dir)
    meta = scene.metadata()
    model = GridNeRF(replace(grid_field_config(meta, 16), **{k: v for k, v in SMALL.items() if k != "hidden"}), seed=0)
    cfg = TrainConfig(steps=120, batch_size=256, progress=False, occupancy_every=8)
    before = evaluate_nerf(model, scene, cfg)["psnr"]
    result = train_nerf(model, scene, cfg)
    assert result.steps == 120 and result.metrics["psnr"] > before + 3.0
    assert 0 < result.metrics["occupied_fraction"] < 0.6  # the occupancy grid marks most of the box empty
    test = scene.split("test")
    from inrkit.nerf.train import grid_step, scene_rays

    rays = scene_rays(meta, test.poses[:1], torch.device("cpu"))
    with torch.no_grad():
        out = render_grid_rays(model, rays["o"], rays["d"], rays["near"], rays["far"],
                               grid_step(model, int(cfg.resolved("grid", meta).n_samples or 2)))
    assert out["samples"] < 0.6 * int(out["candidates"])
    path = save_nerf(model, tmp_path / "g.safetensors", meta, {"train": {"n_samples": 40}})
    loaded, header = load_nerf(path)
    assert isinstance(loaded, GridNeRF) and header["type"] == "nerf-grid"
    assert 0 < float(loaded.occupied.float().mean()) < 1  # rebuilt from the density
    psnr = evaluate_nerf(loaded, scene, cfg)["psnr"]
    assert psnr == pytest.approx(evaluate_nerf(model, scene, replace(cfg, n_samples=40))["psnr"], abs=0.5)


def test_cli_trains_the_grid_field_by_default(scene_dir, tmp_path, capsys):
    out = tmp_path / "g.safetensors"
    assert main(["nerf-train", str(scene_dir), "-o", str(out), "--steps", "20", "--width", "16",
                 "--no-progress", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["arch"] == "grid" and rep["steps"] == 20 and rep["bytes"] == out.stat().st_size
    png = tmp_path / "v.png"
    assert main(["nerf-render", str(out), "-o", str(png), "--scene", str(scene_dir), "--view", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["psnr"] > 5
    assert main(["nerf-prune", str(out), "-o", str(tmp_path / "p.safetensors"), "--width", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inrkit: error:") and err.count("\n") == 1 and "grid NeRF" in err
    assert main(["nerf-train", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
