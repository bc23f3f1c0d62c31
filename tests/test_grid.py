"""Multi-resolution grid encodings (docs/grid.md): interpolation, indices, files, methods on grid models."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit.api import ModelSpec, model_info, render_file
from inrkit.cli import main
from inrkit.compress import compress_model, decode_model
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models.grid import HASH_PRIMES, GridConfig, GridEncoding, dense_index, hash_index
from inrkit.models.io import load_model, model_to_bytes, save_model
from inrkit.models.mlp import grid
from inrkit.train import FitConfig
from inrkit.train.fit import param_groups


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _one_level(dim: int, res: int, table_size: int = 1 << 20) -> GridEncoding:
    enc = GridEncoding(GridConfig(dim=dim, levels=1, features=1, base=res, finest=res, table_size=table_size), _gen())
    with torch.no_grad():
        enc.table.copy_(torch.randn(enc.table.shape, generator=_gen(1)))
    return enc


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_exact_at_vertices_and_linear_between(dim):
    res = 4
    enc = _one_level(dim, res)
    verts = torch.cartesian_prod(*[torch.arange(res + 1)] * dim).reshape(-1, dim)  # [V, d] integer vertices
    x = verts.float() / res * 2 - 1
    got = enc(x)[:, 0]
    want = enc.table[dense_index(verts, res), 0]
    assert torch.allclose(got, want, atol=1e-6)
    # along axis 0, between two vertices: linear in the position
    a, b = verts[:1].clone(), verts[:1].clone()
    b[0, 0] += 1
    for t in (0.25, 0.5, 0.9):
        xt = ((a.float() + t * (b - a).float()) / res * 2 - 1)
        va, vb = enc.table[dense_index(a, res), 0], enc.table[dense_index(b, res), 0]
        assert torch.allclose(enc(xt)[:, 0], (1 - t) * va + t * vb, atol=1e-6)


def test_dense_and_hashed_indices_are_documented():
    cfg = GridConfig(dim=2, levels=3, features=2, base=4, finest=64, table_size=256)
    enc = GridEncoding(cfg, _gen())
    assert cfg.resolutions() == [4, 16, 64] and cfg.dense() == [True, False, False]  # 5^2 <= 256 < 17^2
    assert cfg.level_sizes() == [25, 256, 256]
    x = torch.tensor([[0.3, -0.55]])
    idx, w = enc.corners(x)  # [4 corners, 3 levels, 1]
    offsets = [0, 25, 25 + 256]
    for level, res in enumerate(cfg.resolutions()):
        cell = [int(np.floor((v + 1) / 2 * res)) for v in x[0].tolist()]
        for c in range(4):
            cx, cy = cell[0] + (c & 1), cell[1] + ((c >> 1) & 1)
            if cfg.dense()[level]:
                expect = cx + cy * (res + 1)
            else:
                expect = ((cx * HASH_PRIMES[0]) ^ (cy * HASH_PRIMES[1])) % (1 << 32) % 256
            assert int(idx[c, level, 0]) == expect + offsets[level]
    assert torch.allclose(w.sum(0), torch.ones(3, 1))
    corner = torch.tensor([[3, 7], [100, 5]])
    assert hash_index(corner, 256).tolist() == [((a * 1) ^ (b * 2654435761)) % 2**32 % 256 for a, b in corner.tolist()]
    assert dense_index(corner, 9).tolist() == [3 + 7 * 10, 100 + 5 * 10]


@pytest.mark.parametrize("dim,table_size", [(1, 300), (2, 300), (2, 64), (3, 300), (4, 300)])
def test_fast_path_matches_reference_forward_and_backward(dim, table_size):
    cfg = GridConfig(dim=dim, levels=4, features=2, base=2, finest=12, table_size=table_size)  # 300: not 2^k
    enc = GridEncoding(cfg, _gen())
    with torch.no_grad():
        enc.table.normal_(generator=_gen(2))
    x = torch.rand(257, dim, generator=_gen(3)) * 2.2 - 1.1  # some outside [-1, 1]: clamped
    g = torch.randn(257, cfg.out_dim, generator=_gen(4))
    (enc(x) * g).sum().backward()
    fast = enc.table.grad.clone()
    enc.table.grad = None
    (enc.forward_reference(x) * g).sum().backward()
    assert torch.allclose(fast, enc.table.grad, atol=1e-5)
    assert torch.allclose(enc(x), enc.forward_reference(x), atol=1e-5)


def test_coordinate_gradients_and_bad_configs():
    enc = GridEncoding(GridConfig(dim=2, levels=2, features=2, base=2, finest=4, table_size=64), _gen())
    x = torch.rand(5, 2, requires_grad=True)
    (grad,) = torch.autograd.grad(enc(x).sum(), x, create_graph=True)  # the SDF eikonal term's path
    assert grad.shape == (5, 2)
    for bad in ({"dim": 5}, {"dim": 2, "base": 8, "finest": 4}, {"dim": 2, "levels": 0}, {"dim": 2, "table_size": 2.5}):
        with pytest.raises(InvalidInputError):
            GridConfig(**bad)
    with pytest.raises(InvalidInputError, match="arch grid only"):
        ModelSpec(arch="siren", levels=4)


def _tiny(dim: int = 2) -> torch.nn.Module:
    return grid(dim, 3 if dim == 2 else 1, hidden=(16, 16), levels=4, features=2, base=2, finest=16,
                table_size=64, generator=_gen())


def test_save_load_render_identical(tmp_path):
    model = _tiny()
    with torch.no_grad():
        model.encoding.table.normal_(0, 0.1, generator=_gen(5))
    meta = {"kind": "image", "shape": [12, 10], "channels": 3, "value_offset": [0.5] * 3, "value_scale": [0.5] * 3}
    path = save_model(model, tmp_path / "g.safetensors", signal=meta)
    loaded, header = load_model(path)
    assert header["encoding"]["levels"] == 4 and loaded.encoding.config == model.encoding.config
    x = torch.rand(100, 2) * 2 - 1
    assert torch.equal(loaded(x), model(x))
    save_model(loaded, tmp_path / "g2.safetensors", signal=meta)
    assert (tmp_path / "g2.safetensors").read_bytes() == path.read_bytes()
    a = render_file(path, tmp_path / "a.png")
    b = render_file(tmp_path / "g2.safetensors", tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(a["output"])), np.asarray(Image.open(b["output"])))
    info = model_info(path)
    assert info["encoding"]["levels"] == 4 and 0 < info["encoding"]["param_share"] < 1
    # a header whose grid does not match the table is refused before the tensors are read
    from safetensors.torch import save

    data = model_to_bytes(model, signal=meta)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        hdr = json.loads(handle.metadata()["inrkit"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    hdr["encoding"]["table_size"] = 128
    (tmp_path / "bad.safetensors").write_bytes(save(tensors, metadata={"inrkit": json.dumps(hdr)}))
    with pytest.raises(InvalidFileError, match="grid_table"):
        load_model(tmp_path / "bad.safetensors")
    assert len(data) == path.stat().st_size


def _png(tmp_path, size=(24, 20)):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    img = np.stack([np.sin(xx / 3.0), np.cos(yy / 4.0), np.sin((xx + yy) / 5.0)], -1) * 100 + 127
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(img).save(path)
    return path


def test_cli_fit_info_prune_mesh_codecs(tmp_path, capsys):
    img = _png(tmp_path)
    out = tmp_path / "m.safetensors"
    assert main(["fit", str(img), "-o", str(out), "--arch", "grid", "--levels", "4", "--features", "2",
                 "--table-size", "128", "--finest", "16", "--hidden", "16x2", "--steps", "150", "--lr", "1e-2",
                 "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["psnr"] > 15
    model, header = load_model(out)
    assert header["extra"]["config"]["model"]["levels"] == 4 and model.encoding.config.finest == 16
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["encoding"]["level_sizes"] == model.encoding.config.level_sizes()
    # prune (MLP neurons after the encoding) and run the pruned model
    assert main(["prune", str(out), "-o", str(tmp_path / "p.safetensors"), "--method", "l1", "--keep", "0.5",
                 "--json"]) == 0
    capsys.readouterr()
    pruned, _ = load_model(tmp_path / "p.safetensors")
    assert pruned.widths[1] == 8 and pruned(torch.zeros(3, 2)).shape == (3, 3)
    # AMR mesh (PruningAMR's ID pruning acts on the MLP after the grid)
    assert main(["mesh", str(out), "-o", str(tmp_path / "m.vtu"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["elements"] > 0
    # quant / coin / sinr codecs round-trip the table
    for codec, kw, tol in (("quant", {"bits": 12}, 1e-2), ("coin", {}, 1e-2), ("sinr", {}, None)):
        data = compress_model(model, codec, **kw) if kw else compress_model(model, codec)
        decoded, _ = decode_model(data)
        assert decoded.encoding is not None and decoded.encoding.config == model.encoding.config
        if tol is not None:
            x = torch.rand(50, 2) * 2 - 1
            assert (decoded(x) - model(x)).abs().max() < tol


def test_per_group_learning_rates_and_refusals():
    model = _tiny()
    groups = param_groups(model, FitConfig(lr=1e-3))
    assert [g["base_lr"] for g in groups] == [1e-3, 1e-1] and groups[1]["params"] == [model.encoding.table]
    assert param_groups(model, FitConfig(lr=1e-3, encoding_lr=0.5))[1]["base_lr"] == 0.5
    from inrkit.models import StackedModel

    with pytest.raises(InvalidInputError, match="cannot be stacked"):
        StackedModel(model, 2)
    from inrkit.adapt.surgery import densify

    sine = grid(2, 3, hidden=(8, 8), levels=2, finest=4, base=2, activation="sine")
    with pytest.raises(InvalidInputError, match="grid"):
        densify(sine, 2)


def test_grid_models_default_to_random_batches():
    from inrkit.models.grid import GRID_BATCH
    from inrkit.signals.base import GridSignal
    from inrkit.train.fit import _batch_size

    signal = GridSignal(np.random.default_rng(0).random((160, 160, 1)).astype(np.float32), kind="image")
    plain = ModelSpec(arch="relu", hidden=(8,)).build(2, 1)
    with_grid = _tiny()
    assert _batch_size(FitConfig(), signal, plain) is None  # 25600 points: full batch
    assert _batch_size(FitConfig(), signal, with_grid) == GRID_BATCH
    assert _batch_size(FitConfig(batch_size=1000), signal, with_grid) == 1000
