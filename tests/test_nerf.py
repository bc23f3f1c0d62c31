"""NeRF: scenes, sampling, volume rendering, the MLP and its files, pruning, training, CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit.cli import main
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models.surgery import find_group, group_weights, remove_neurons
from inrkit.nerf import (
    NeRFConfig,
    NeRFMLP,
    TrainConfig,
    generate_scene,
    load_blender,
    load_nerf,
    pixel_rays,
    positional_encoding,
    prunable_layers,
    prune_and_train,
    prune_nerf,
    sample_pdf,
    save_nerf,
    sphere_pose,
    stratified_samples,
    train_nerf,
    volume_render,
)
from inrkit.nerf.render import render_rays

TINY = NeRFConfig.sized(16, 4, pos_freqs=4, dir_freqs=2)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("scene") / "s", size=16, views=6, test_views=2, seed=3)


# ------------------------------------------------------------------ volume rendering
def test_single_interval_opacity_is_one_minus_exp():
    sigma, delta = 2.5, 0.3
    t = torch.tensor([[1.0, 1.0 + delta]])
    dens = torch.tensor([[sigma, 0.0]])
    rgb = torch.tensor([[[0.2, 0.4, 0.6], [1.0, 1.0, 1.0]]])
    out = volume_render(dens, rgb, t, torch.ones(1), white_background=True)
    acc = 1 - math.exp(-sigma * delta)
    assert out["acc"].item() == pytest.approx(acc, rel=1e-5)
    expected = torch.tensor([0.2, 0.4, 0.6]) * acc + (1 - acc)
    assert torch.allclose(out["rgb"][0], expected, atol=1e-5)


def test_constant_density_slab_and_ray_norm():
    # density sigma on [2, 3) sampled at 11 points, zero at the last one: opacity 1 - exp(-sigma * L * |d|)
    t = torch.linspace(2.0, 3.0, 11)[None]
    sigma = torch.full((1, 11), 0.7)
    sigma[0, -1] = 0.0
    norm = torch.tensor([1.5])
    out = volume_render(sigma, torch.zeros(1, 11, 3), t, norm, white_background=False)
    assert out["acc"].item() == pytest.approx(1 - math.exp(-0.7 * 1.0 * 1.5), rel=1e-5)
    assert torch.all(out["weights"] >= 0) and out["weights"].sum().item() == pytest.approx(out["acc"].item())
    empty = volume_render(torch.zeros(1, 11), torch.zeros(1, 11, 3), t, norm, white_background=True)
    assert empty["acc"].item() == pytest.approx(0.0) and torch.allclose(empty["rgb"], torch.ones(1, 3))


def test_stratified_and_pdf_samples():
    g = torch.Generator().manual_seed(0)
    near, far = torch.tensor([2.0, 1.0]), torch.tensor([6.0, 1.5])
    t = stratified_samples(near, far, 16, perturb=True, generator=g)
    assert t.shape == (2, 16) and torch.all(t >= near[:, None]) and torch.all(t <= far[:, None])
    assert torch.all(t[:, 1:] >= t[:, :-1])
    bins = torch.linspace(0.0, 1.0, 11).expand(2, 11)
    w = torch.zeros(2, 10)
    w[:, 7] = 1.0                                   # all mass in [0.7, 0.8]
    s = sample_pdf(bins, w, 64, perturb=True, generator=g)
    assert ((s >= 0.7) & (s <= 0.8)).float().mean() > 0.95
    d = sample_pdf(bins, w, 16, perturb=False)
    assert torch.all(d[:, 1:] >= d[:, :-1])


def test_render_rays_opaque_sphere_model():
    class Ball(torch.nn.Module):  # density 50 inside the unit sphere, red
        def forward(self, x, d):
            inside = (x.norm(dim=-1) < 1.0).float()
            return 50.0 * inside, torch.tensor([1.0, 0.0, 0.0]).expand(x.shape[0], 3)

    o = torch.tensor([[0.0, 0.0, 4.0], [0.0, 3.0, 4.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    out = render_rays(Ball(), o, d, torch.full((2,), 2.0), torch.full((2,), 6.0), 64, 64)
    assert out["acc"][0] > 0.99 and out["acc"][1] < 1e-6
    assert torch.allclose(out["rgb"][0], torch.tensor([1.0, 0.0, 0.0]), atol=0.02)
    assert torch.allclose(out["rgb"][1], torch.ones(3))
    assert out["depth"][0].item() == pytest.approx(3.0, abs=0.1)


# ------------------------------------------------------------------ scenes
def test_generated_scene_is_blender_format_and_loads(scene_dir):
    meta = json.loads((scene_dir / "transforms_train.json").read_text())
    assert 0 < meta["camera_angle_x"] < math.pi and len(meta["frames"]) == 6
    assert np.asarray(meta["frames"][0]["transform_matrix"]).shape == (4, 4)
    with Image.open(scene_dir / "train" / "r_0.png") as img:
        assert img.mode == "RGBA" and img.size == (16, 16)
        alpha = np.asarray(img)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255          # background and solid both present
    scene = load_blender(scene_dir)
    train = scene.split("train")
    assert train.images.shape == (6, 16, 16, 3) and train.poses.shape == (6, 4, 4)
    assert set(scene.splits) == {"train", "val", "test"}
    # transparent pixels are composited on white
    assert np.allclose(train.images[0][alpha == 0], 1.0)
    assert scene.focal == pytest.approx(8 / math.tan(0.5 * meta["camera_angle_x"]))
    small = load_blender(scene_dir, downscale=2, splits=("test",))
    assert small.split("test").images.shape == (2, 8, 8, 3) and small.focal == pytest.approx(scene.focal / 2)


def test_scene_generation_is_deterministic(tmp_path):
    a = generate_scene(tmp_path / "a", size=12, views=2, test_views=1, seed=5)
    b = generate_scene(tmp_path / "b", size=12, views=2, test_views=1, seed=5)
    c = generate_scene(tmp_path / "c", size=12, views=2, test_views=1, seed=6)
    read = lambda p: np.asarray(Image.open(p / "train" / "r_1.png"))  # noqa: E731
    assert np.array_equal(read(a), read(b)) and not np.array_equal(read(a), read(c))


def test_loader_rejects_bad_scenes(tmp_path, scene_dir):
    with pytest.raises(InvalidFileError):
        load_blender(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "transforms_train.json").write_text("{not json")
    with pytest.raises(InvalidFileError, match="JSON"):
        load_blender(bad, splits=("train",))
    frame = {"file_path": "./missing", "transform_matrix": np.eye(4).tolist()}
    (bad / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": [frame]}))
    with pytest.raises(InvalidFileError, match="missing"):
        load_blender(bad, splits=("train",))
    frame = {"file_path": str((scene_dir / "train" / "r_0").resolve()), "transform_matrix": [[1, 0], [0, 1]]}
    (bad / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": [frame]}))
    with pytest.raises(InvalidFileError, match="4x4"):
        load_blender(bad, splits=("train",))
    (bad / "garbage.png").write_bytes(b"\x89PNG not really")
    frame = {"file_path": "./garbage.png", "transform_matrix": np.eye(4).tolist()}
    (bad / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": [frame]}))
    with pytest.raises(InvalidFileError, match="cannot read image"):
        load_blender(bad, splits=("train",))


def test_cameras_look_at_the_origin():
    c2w = sphere_pose(40.0, 25.0, 4.0)
    o, d = pixel_rays(c2w, 2, 2, 10.0)
    centre = d.mean(axis=(0, 1))
    toward = -c2w[:3, 3] / np.linalg.norm(c2w[:3, 3])
    assert np.allclose(centre / np.linalg.norm(centre), toward, atol=1e-6)
    assert np.allclose(o, c2w[:3, 3])
    assert np.allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-9)


# ------------------------------------------------------------------ model and files
def test_paper_architecture_size_and_encoding():
    assert NeRFMLP().num_params() == 595_844            # the study's 595K
    x = torch.rand(5, 3)
    enc = positional_encoding(x, 10)
    assert enc.shape == (5, 63) and torch.allclose(enc[:, :3], x)
    assert torch.allclose(enc[:, 3 + 3 * 4:3 + 3 * 5], torch.sin(16 * x))


def test_save_load_roundtrip_and_corruption(tmp_path):
    model = prune_nerf(NeRFMLP(TINY, seed=1), "w_out", 8, layers=["trunk.1", "views.0"])
    path = save_nerf(model, tmp_path / "n.safetensors", {"height": 4}, {"note": "x"})
    loaded, header = load_nerf(path)
    assert header["scene"] == {"height": 4} and loaded.config.trunk_widths == [16, 8, 16, 16]
    x, d = torch.rand(7, 3), torch.nn.functional.normalize(torch.randn(7, 3), dim=-1)
    assert all(torch.equal(a, b) for a, b in zip(model(x, d), loaded(x, d)))
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(InvalidFileError, match="checksum"):
        load_nerf(tmp_path / "bad.safetensors")
    (tmp_path / "trunc.safetensors").write_bytes(bytes(data[:100]))
    with pytest.raises(InvalidFileError):
        load_nerf(tmp_path / "trunc.safetensors")


# ------------------------------------------------------------------ pruning
@pytest.mark.parametrize("method", ["uniform", "w_in", "w_out", "product", "coreset"])
def test_pruned_nerf_keeps_its_interface(method):
    model = NeRFMLP(TINY, seed=0)
    small = prune_nerf(model, method, 8, seed=1)
    assert small.config.trunk_widths == [8] * 4 and small.config.feature_width == 8 and small.config.view_widths == [8]
    assert small.num_params() < model.num_params()
    x, d = torch.rand(9, 3) * 2 - 1, torch.nn.functional.normalize(torch.randn(9, 3), dim=-1)
    sigma, rgb = small(x, d)
    assert sigma.shape == (9,) and rgb.shape == (9, 3) and torch.all(sigma >= 0)
    assert torch.all((rgb >= 0) & (rgb <= 1))
    assert model.config.trunk_widths == [16] * 4      # the original is untouched
    for name in prunable_layers(small):
        w_in, w_out = group_weights(small, find_group(small, name))
        assert w_in.shape[0] == w_out.shape[1] == 8


def test_surgery_respects_the_skip_connection():
    model = NeRFMLP(TINY, seed=0)
    skip = TINY.skips[0]
    n = TINY.trunk_widths[skip]
    dead = [1, 5]
    with torch.no_grad():   # silence two neurons of the skip layer by zeroing their outgoing columns
        model.trunk[skip + 1].weight[:, TINY.pos_dim + torch.tensor(dead)] = 0.0
    x, d = torch.rand(11, 3), torch.nn.functional.normalize(torch.randn(11, 3), dim=-1)
    before = model(x, d)
    keep = torch.tensor([j for j in range(n) if j not in dead])
    small = model.copy()
    remove_neurons(small, find_group(small, f"trunk.{skip}"), keep)
    after = small(x, d)
    assert small.trunk[skip + 1].in_features == TINY.pos_dim + n - 2
    assert torch.allclose(before[0], after[0], atol=1e-6) and torch.allclose(before[1], after[1], atol=1e-6)
    # the last trunk layer feeds the density head and the feature layer
    last = f"trunk.{len(TINY.trunk_widths) - 1}"
    pruned = model.copy()
    remove_neurons(pruned, find_group(pruned, last), torch.arange(4))
    assert pruned.sigma.in_features == 4 and pruned.feature.in_features == 4


def test_coreset_reweights_outgoing_columns():
    model = NeRFMLP(TINY, seed=0)
    small = prune_nerf(model, "coreset", 4, layers=["views.0"], seed=0)
    kept_cols = small.rgb.weight
    # every kept column is an original column times a factor >= 1 (1 / inclusion probability)
    ratios = kept_cols[:, :, None] / model.rgb.weight[:, None, :]
    match = torch.isclose(ratios, ratios[:1].expand_as(ratios), rtol=1e-4).all(0) & (ratios[0] >= 1 - 1e-6)
    assert match.any(1).all()
    with pytest.raises(InvalidInputError):
        prune_nerf(model, "magic", 4)


# ------------------------------------------------------------------ training
def test_training_improves_and_prune_retrain(scene_dir):
    torch.manual_seed(0)
    scene = load_blender(scene_dir)
    cfg = TrainConfig(steps=150, batch_size=128, n_samples=12, n_importance=12, lr=5e-3, lr_final=5e-4,
                      progress=False)
    model = NeRFMLP(TINY, seed=0)
    before = train_nerf(model.copy(), scene, TrainConfig(**{**cfg.__dict__, "steps": 0})).metrics["psnr"]
    result = train_nerf(model, scene, cfg)
    assert result.steps == 150 and result.seconds > 0 and len(result.history) >= 2
    assert result.metrics["psnr"] > before + 3.0
    pr = prune_and_train(result.model, scene, "coreset", 8, steps=20, config=cfg)
    assert pr.params < pr.params_before and pr.train.steps == 20
    assert pr.metrics["psnr"] > before


# ------------------------------------------------------------------ CLI
def test_cli_synth_train_prune_render(tmp_path, capsys):
    scene = tmp_path / "sc"
    assert main(["synth", "scene", "-o", str(scene), "--size", "12", "--views", "3", "--test-views", "1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["views"] == 3
    nerf = tmp_path / "n.safetensors"
    assert main(["nerf-train", str(scene), "-o", str(nerf), "--arch", "mlp", "--iters", "5",
                 "--width", "16", "--depth", "4", "--batch", "32", "--samples", "8", "--importance", "4",
                 "--no-progress", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {"psnr", "params", "bytes", "seconds"} <= set(rep) and rep["bytes"] == nerf.stat().st_size
    small = tmp_path / "s.safetensors"
    assert main(["nerf-prune", str(nerf), "-o", str(small), "--method", "w_out", "--width", "8",
                 "--retrain", "3", "--json"]) == 0
    rep2 = json.loads(capsys.readouterr().out)
    assert rep2["params"] < rep["params"] and rep2["bytes"] < rep["bytes"] and rep2["psnr"] is not None
    gif = tmp_path / "t.gif"
    assert main(["nerf-render", str(small), "-o", str(gif), "--views", "3", "--size", "8", "--json"]) == 0
    capsys.readouterr()
    with Image.open(gif) as img:
        assert img.n_frames == 3 and img.size == (8, 8)
    assert main(["nerf-render", str(small), "-o", str(tmp_path / "x.bmp")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inrkit: error:") and err.count("\n") == 1
    assert main(["nerf-prune", str(scene), "-o", str(tmp_path / "y.safetensors")]) == 2


# ------------------------------------------------------------------ training through inrkit.train.fit
# Per-step loss of the pre-trainer NeRF loop (its own Adam loop) on the module's scene, recorded before
# the move onto inrkit.train.fit: TINY, seed 0, 30 iters, 64 rays, 8 + 8 samples, lr 5e-3 -> 5e-4, precrop 10.
RECORDED_LOSSES = [
    0.292782723903656, 0.26546359062194824, 0.2068357765674591, 0.2337840348482132,
    0.23626026511192322, 0.2414746880531311, 0.2232813537120819, 0.26988184452056885,
    0.21583779156208038, 0.22613802552223206, 0.3242596685886383, 0.32843905687332153,
    0.357369601726532, 0.34116294980049133, 0.32824766635894775, 0.3408788740634918,
    0.33999890089035034, 0.3029896914958954, 0.28928396105766296, 0.34869009256362915,
    0.3100631833076477, 0.301860511302948, 0.34789562225341797, 0.3195093274116516,
    0.29573583602905273, 0.2882797122001648, 0.3214801549911499, 0.31356608867645264,
    0.3367007374763489, 0.34840697050094604,
]
RECORDED_TEST_PSNR = 8.052861304759286


def test_training_through_fit_reproduces_the_recorded_loop(scene_dir):
    from inrkit.nerf import RayTask

    scene = load_blender(scene_dir)
    cfg = TrainConfig(steps=30, batch_size=64, n_samples=8, n_importance=8, lr=5e-3, lr_final=5e-4, log_every=1,
                      precrop_steps=10, progress=False, eval_views=2)
    result = train_nerf(NeRFMLP(TINY, seed=0), scene, cfg)
    assert [r["step"] for r in result.history] == list(range(1, 31)) and result.steps == 30
    np.testing.assert_allclose([r["loss"] for r in result.history], RECORDED_LOSSES, rtol=1e-5)
    assert result.metrics["psnr"] == pytest.approx(RECORDED_TEST_PSNR, abs=1e-4)
    fit_cfg = cfg.resolved("mlp").fit_config()
    assert fit_cfg.schedule == "exponential" and fit_cfg.lr * fit_cfg.lr_min_factor == pytest.approx(5e-4)
    task = RayTask(scene, TrainConfig(eval_views=0, precrop_steps=1, batch_size=8), torch.device("cpu"))
    assert not task.supports_bf16 and task.data_range == 1.0 and task.evaluate(NeRFMLP(TINY)) == {}
    gen = torch.Generator().manual_seed(0)
    o, d, near, far, target, g = task.train_batch(8, gen, torch.device("cpu"))
    assert o.shape == (8, 3) and target.shape == (8, 3) and g is gen
