"""PruningAMR: mesh bookkeeping, interpolation, export, ID pruning per element, marking, the AMR loops."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inrkit.amr import (
    BoxMesh,
    InrField,
    PruningAMRConfig,
    batched_id,
    element_interp_error,
    element_pruning_stats,
    error_amr,
    mark,
    mesh_rmse,
    parse_domain,
    preview_png,
    pruning_amr,
    scipy_id,
    slice_4d,
    uniform_mesh,
    vertex_values,
    write_mesh,
    write_pvd,
    write_vtu,
)
from inrkit.errors import InrkitError, InvalidInputError
from inrkit.models import MLP

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def multilinear(x: np.ndarray) -> np.ndarray:
    """A function that multilinear interpolation reproduces exactly on any box mesh."""
    out = 1.0 + x.sum(1)
    for i in range(x.shape[1] - 1):
        out = out + 0.5 * (i + 1) * x[:, i] * x[:, i + 1]
    return out


def bump_mlp(centre=(0.5, 0.5), sharp: float = 40.0, width: int = 16, seed: int = 0) -> MLP:
    """A tanh network whose output varies steeply only near ``centre`` (flat far away)."""
    g = torch.Generator().manual_seed(seed)
    m = MLP([2, width, 1], ["tanh", "identity"])
    with torch.no_grad():
        ang = torch.rand(width, generator=g) * 2 * math.pi
        dirs = torch.stack([torch.cos(ang), torch.sin(ang)], 1)
        m.weights[0].copy_(sharp * dirs)
        m.biases[0].copy_(-sharp * (dirs @ torch.tensor(centre, dtype=torch.float32)))
        m.weights[1].copy_(torch.randn(1, width, generator=g) / width)
        m.biases[1].fill_(1.0)
    return m


# ------------------------------------------------------------------ the mesh
@pytest.mark.parametrize("dim,base,level,elements,dofs", [
    (2, 2, 1, 16, 25), (3, 1, 2, 64, 125), (4, 1, 1, 16, 81), (2, 3, 0, 9, 16)])
def test_uniform_counts(dim, base, level, elements, dofs):
    mesh = BoxMesh.uniform([-1, 1] * dim, base, level)
    assert (mesh.num_elements, mesh.dofs, mesh.num_hanging) == (elements, dofs, 0)
    assert mesh.cells.shape == (elements, 2**dim)
    assert np.allclose(mesh.vertices.min(0), -1) and np.allclose(mesh.vertices.max(0), 1)


def test_refine_2d_hanging_nodes():
    mesh = BoxMesh.uniform("-1,1,-1,1", 2, 0)  # 4 cells of width 1
    lo, _ = mesh.element_bounds()
    first = int(np.flatnonzero(np.all(lo == [-1, -1], axis=1))[0])
    fine = mesh.refine([first])
    assert (fine.num_elements, fine.dofs) == (7, 14)  # 9 + 5 new vertices
    hang = fine.vertices[fine.hanging_mask()]
    assert sorted(map(tuple, hang.tolist())) == [(-0.5, 0.0), (0.0, -0.5)]
    # refine the child [-1,-0.5]x[-0.5,0]: 5 new vertices, 3 of them hang on level-0/1 neighbours
    lo, _ = fine.element_bounds()
    child = int(np.flatnonzero(np.all(np.isclose(lo, [-1, -0.5]), axis=1))[0])
    finer = fine.refine([child])
    assert (finer.num_elements, finer.dofs, finer.num_hanging) == (10, 19, 5)
    assert {(-0.75, 0.0), (-0.75, -0.5), (-0.5, -0.25)} <= set(map(tuple, finer.vertices[finer.hanging_mask()]))
    # refining the coarse neighbour [0,1]x[-1,0] frees (0,-0.5) and makes (0.5, 0) hang
    lo, _ = finer.element_bounds()
    nb = int(np.flatnonzero(np.all(np.isclose(lo, [0, -1]), axis=1))[0])
    last = finer.refine([nb])
    hang = set(map(tuple, last.vertices[last.hanging_mask()]))
    assert last.num_hanging == 5 and (0.0, -0.5) not in hang and (0.5, 0.0) in hang


def test_refine_3d_counts():
    mesh = BoxMesh.uniform("0,1,0,1,0,1", 2, 0).refine([0])
    # 27 coarse vertices + 19 new ones; 3 face centres and 9 edge midpoints hang on coarse neighbours
    assert (mesh.num_elements, mesh.dofs, mesh.num_hanging) == (15, 46, 12)


def test_uniform_refinement_equals_uniform_mesh():
    a = BoxMesh.uniform("0,2,0,1", [2, 1], 0).refine_uniform(3)
    b = BoxMesh.uniform("0,2,0,1", [2, 1], 3)
    assert a.dofs == b.dofs == 17 * 9 and a.num_elements == b.num_elements == 128
    assert np.allclose(np.sort(a.vertices, axis=0), np.sort(b.vertices, axis=0))


@pytest.mark.parametrize("dim", [2, 3, 4])
def test_interpolation_exact_for_multilinear(dim):
    rng = np.random.default_rng(dim)
    mesh = BoxMesh.uniform([0, 1] * dim, 2, 0)
    for _ in range(3):  # random non-conforming refinement
        mesh = mesh.refine(rng.random(mesh.num_elements) < 0.3)
    assert mesh.num_hanging > 0
    pts = mesh.sample_domain(500, rng)
    assert np.allclose(mesh.interpolate(multilinear(mesh.vertices), pts), multilinear(pts), atol=1e-12)


def test_locate_finds_containing_element():
    rng = np.random.default_rng(0)
    mesh = BoxMesh.uniform("-2,2,0,1,5,6", 2, 1)
    mesh = mesh.refine(rng.random(mesh.num_elements) < 0.5)
    pts = mesh.sample_domain(1000, rng)
    lo, hi = mesh.element_bounds()
    e = mesh.locate(pts)
    assert np.all((lo[e] <= pts) & (pts <= hi[e]))
    with pytest.raises(InvalidInputError):
        mesh.locate(np.array([[3.0, 0.5, 5.5]]))


@pytest.mark.parametrize("text", ["1,0", "0,1,2", "a,b", "", "0,nan"])
def test_parse_domain_rejects_bad_boxes(text):
    with pytest.raises(InvalidInputError):
        parse_domain(text)


def test_parse_domain_checks_dim():
    assert parse_domain("-1,1,0,2").tolist() == [[-1, 1], [0, 2]]
    with pytest.raises(InvalidInputError, match="3 coordinates"):
        parse_domain("-1,1,0,2", dim=3)


# ----------------------------------------------------------------- export
def test_vtu_roundtrip_meshio_and_pyvista(tmp_path):
    import meshio

    mesh = BoxMesh.uniform("0,1,0,1,0,1", 2, 0).refine([0, 3])
    vals = multilinear(mesh.vertices)
    path = write_vtu(mesh, vals, tmp_path / "m.vtu")
    m = meshio.read(path)
    assert len(m.points) == mesh.dofs and m.cells[0].type == "hexahedron"
    assert len(m.cells[0].data) == mesh.num_elements
    assert np.allclose(m.point_data["inr"], vals, atol=1e-5)
    assert np.allclose(m.points, mesh.vertices)
    pv = pytest.importorskip("pyvista")
    g = pv.read(path)
    assert (g.n_points, g.n_cells) == (mesh.dofs, mesh.num_elements)
    assert np.all(np.asarray([g.get_cell(i).n_points for i in range(3)]) == 8)
    assert np.allclose(g.point_data["inr"], vals, atol=1e-5)
    # every hexahedron has positive volume: the corner order is VTK's
    assert np.all(g.compute_cell_sizes()["Volume"] > 0)


def test_vtu_2d_quads_and_multichannel(tmp_path):
    import meshio

    mesh = BoxMesh.uniform("-1,1,-1,1", 2, 1).refine([5])
    vals = np.stack([multilinear(mesh.vertices), -multilinear(mesh.vertices)], 1)
    m = meshio.read(write_mesh(mesh, vals, tmp_path / "q.vtu"))
    assert m.cells[0].type == "quad" and len(m.cells[0].data) == mesh.num_elements
    assert m.point_data["inr"].shape == (mesh.dofs, 2)
    # quads are counter-clockwise (positive signed area)
    p = m.points[m.cells[0].data][:, :, :2]
    area = 0.5 * np.sum(p[:, :, 0] * np.roll(p[:, :, 1], -1, 1) - np.roll(p[:, :, 0], -1, 1) * p[:, :, 1], 1)
    assert np.all(area > 0)
    with pytest.raises(InrkitError):
        write_mesh(mesh, vals, tmp_path / "q.png")
    with pytest.raises(InvalidInputError):
        write_vtu(mesh, vals[:-1], tmp_path / "bad.vtu")


def test_pvd_4d_slices(tmp_path):
    import meshio

    mesh = BoxMesh.uniform("0,1,0,1,0,1,0,2", 1, 1).refine([0])
    f = lambda x: x[:, 0] + 2 * x[:, 3]  # noqa: E731
    vals = f(mesh.vertices)
    pts, hexes, v, _ = slice_4d(mesh, vals, 0.5)
    assert hexes.shape[1] == 8 and np.allclose(v[:, 0], pts[:, 0] + 1.0)
    path = write_pvd(mesh, vals, tmp_path / "s.pvd")
    text = path.read_text()
    files = sorted(tmp_path.glob("s_*.vtu"))
    assert text.count("<DataSet") == len(files) == len(np.unique(mesh.vertices[:, 3]))
    last = meshio.read(files[-1])
    assert last.cells[0].type == "hexahedron"
    assert np.allclose(last.point_data["inr"], last.points[:, 0] + 4.0, atol=1e-5)  # t = 2


def test_preview_png_2d_and_3d(tmp_path):
    mesh = BoxMesh.uniform("-1,1,-1,1", 2, 1).refine([0])
    out = preview_png(mesh, multilinear(mesh.vertices), tmp_path / "p.png")
    assert out["renderer"] == "matplotlib" and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    mesh3 = BoxMesh.uniform("0,1,0,1,0,1", 2, 0).refine([0])
    out = preview_png(mesh3, multilinear(mesh3.vertices), tmp_path / "p3.png", use_pyvista=False)
    assert out["renderer"] == "matplotlib" and (tmp_path / "p3.png").stat().st_size > 1000


# ------------------------------------------------------------- ID pruning
def _lowrank_batch(B=12, N=256, n=24, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.logspace(0, -6, n, dtype=torch.float64)
    H = []
    for _ in range(B):
        U, _ = torch.linalg.qr(torch.randn(N, n, generator=g, dtype=torch.float64))
        V, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        H.append((U * s) @ V)
    return torch.stack(H)


@pytest.mark.parametrize("eps", [1e-2, 1e-3, 1e-4])
def test_batched_id_matches_scipy_id(eps):
    H = _lowrank_batch()
    r1, M1 = batched_id(H, eps)
    r2, M2 = scipy_id(H, eps)
    assert torch.equal(r1, r2)
    for M in (M1, M2):
        rel = (torch.bmm(H, M) - H).norm(dim=(1, 2)) / H.norm(dim=(1, 2))
        assert float(rel.max()) < 3 * eps
    # M is zero outside the kept rows
    assert torch.equal((M1.abs().sum(2) > 0).sum(1), r1)


def test_batched_id_dead_layer_keeps_one():
    H = torch.zeros(2, 16, 8, dtype=torch.float64)
    H[1, :, 3] = 1.0
    rank, M = batched_id(H, 1e-3)
    assert rank.tolist() == [1, 1]
    assert torch.allclose(torch.bmm(H, M), H)


def test_element_pruning_matches_physical_id_pruning():
    """The batched, masked ID on pruned activations equals inrkit.prune's physical ID pruning (fold into the next
    layer)."""
    from inrkit.prune.interpolative import id_prune_model

    torch.manual_seed(0)
    model = MLP([2, 24, 24, 1], ["tanh", "tanh", "identity"])
    for w in model.weights:
        torch.nn.init.normal_(w, std=1.0)
    model = model.double()
    g = torch.Generator().manual_seed(1)
    x_id = torch.rand(1, 256, 2, generator=g, dtype=torch.float64) * 0.5
    x_err = torch.rand(1, 64, 2, generator=g, dtype=torch.float64) * 0.5
    p, err, kept = element_pruning_stats(model, x_id, x_err, 1e-3, id_activations="pruned")
    pruned, kept_ref = id_prune_model(model.copy(), x_id[0], 1e-3)
    assert kept[0].tolist() == kept_ref
    assert p[0] == pytest.approx(sum(kept_ref) / 48)
    with torch.no_grad():
        f, g_ = model(x_err[0]), pruned(x_err[0])
    ref_err = float(((f - g_).abs().mean() / (f + 5.0).abs()).mean())  # the reference code's error
    assert err[0] == pytest.approx(ref_err, rel=1e-4, abs=1e-12)
    _, rel, _ = element_pruning_stats(model, x_id, x_err, 1e-3, error="relative", out_range=2.0,
                                      id_activations="pruned")
    assert rel[0] == pytest.approx(float((f - g_).abs().mean() / 2.0), rel=1e-4, abs=1e-12)
    assert err[0] < 0.05  # stays close to the tolerance scale


def test_pruning_error_shrinks_with_eps():
    model = bump_mlp().double()
    g = torch.Generator().manual_seed(0)
    x_id = 0.4 + 0.2 * torch.rand(4, 256, 2, generator=g, dtype=torch.float64)
    x_err = 0.4 + 0.2 * torch.rand(4, 128, 2, generator=g, dtype=torch.float64)
    errs = [element_pruning_stats(model, x_id, x_err, eps)[1].max() for eps in (1e-2, 1e-4, 1e-6)]
    props = [element_pruning_stats(model, x_id, x_err, eps)[0].mean() for eps in (1e-2, 1e-4, 1e-6)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-4
    assert props[0] <= props[1] <= props[2]


# ----------------------------------------------------------------- marking
def test_mark_rule():
    p = np.array([0.1, 0.3, 0.1, 0.3])
    err = np.array([1e-4, 1e-4, 1e-2, 1e-2])
    assert mark(p, err, 0.2, 1e-3).tolist() == [False, True, True, True]
    assert mark(p, err, 0.5, 1e-1).tolist() == [False, False, False, False]


def test_pruning_amr_marking_follows_P_and_T():
    field = InrField.from_model(bump_mlp())
    dom = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    lax = pruning_amr(field, dom, PruningAMRConfig(P=1.0, T=1e9, max_iters=3, init_level=0, base=2,
                                                   progress=False))
    assert lax.mesh.num_elements == 4 and lax.iterations == 0
    strict = pruning_amr(field, dom, PruningAMRConfig(P=1e-6, T=1e9, max_iters=2, init_level=0, base=2, n_id=64,
                                                      n_err=16, progress=False, max_dofs=10**6))
    assert strict.mesh.num_elements == 4 * 16 and strict.iterations == 2  # every element, every time
    assert strict.p_above_P_everywhere and "stayed above P" in strict.warnings[0]
    capped = pruning_amr(field, dom, PruningAMRConfig(P=1e-6, max_iters=3, init_level=0, base=2, n_id=32,
                                                      n_err=8, max_elements=40, progress=False))
    assert capped.mesh.num_elements == 16 and "max_elements" in capped.history[-1]["stopped"]
    by_t = pruning_amr(field, dom, PruningAMRConfig(P=1.0, T=1e-12, eps=1e-2, max_iters=1, init_level=0, base=2,
                                                    progress=False))
    assert by_t.history[0]["marked_by_T"] == by_t.history[0]["refined"] == 4


def test_pruning_amr_refines_near_the_feature():
    field = InrField.from_model(bump_mlp(centre=(0.5, 0.5)))
    dom = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    res = pruning_amr(field, dom, PruningAMRConfig(max_iters=4, init_level=0, base=4, n_id=128, n_err=64,
                                                   error="relative", max_dofs=10**6, progress=False))
    mesh = res.mesh
    lo, hi = mesh.element_bounds()
    dist = np.linalg.norm((lo + hi) / 2 - [0.5, 0.5], axis=1)
    assert res.iterations >= 2
    assert mesh.levels[dist < 0.3].mean() > mesh.levels[dist > 1.0].mean() + 1
    assert mesh.dofs < BoxMesh.uniform(dom, 4, mesh.max_level).dofs / 3
    assert [h["dofs"] for h in res.history] == sorted(h["dofs"] for h in res.history)


def test_error_amr_and_uniform_baselines():
    def bump(x):
        return np.exp(-40.0 * np.sum((x - [0.5, 0.5]) ** 2, axis=1))[:, None]

    dom = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    uni = uniform_mesh(dom, 3, base=4)
    res = error_amr(bump, dom, dof_budget=uni.dofs // 2, base=4, n_err=32, progress=False)
    assert uni.dofs // 2 <= res.mesh.dofs < uni.dofs and res.history[-2]["dofs"] < uni.dofs // 2
    lo, hi = res.mesh.element_bounds()
    dist = np.linalg.norm((lo + hi) / 2 - [0.5, 0.5], axis=1)
    assert res.mesh.levels[dist < 0.3].mean() > res.mesh.levels[dist > 1.0].mean() + 1
    e_amr = mesh_rmse(res.mesh, vertex_values(bump, res.mesh), bump, n=4096)
    e_uni = mesh_rmse(uni, vertex_values(bump, uni), bump, n=4096)
    assert e_amr < e_uni  # fewer DOFs, smaller error


def test_element_interp_error_norms():
    """For f = x^2 the interpolation error scales as h^2: the max abs error by 4 per level, the L2 error of an
    element (sqrt(volume * mean square)) by 4 * 2 = 8 in 2D."""
    def square(x):
        return x[:, :1] ** 2

    dom = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    mesh = BoxMesh.uniform(dom, 2, 1)
    mesh = mesh.refine(np.arange(mesh.num_elements) == 0)  # elements of levels 1 and 2
    vals = vertex_values(square, mesh, conforming=False)
    coarse, fine = np.flatnonzero(mesh.levels == 1)[0], np.flatnonzero(mesh.levels == 2)[0]
    both = np.array([coarse, fine])
    mx = element_interp_error(square, mesh, vals, both, 20000, np.random.default_rng(0), "max")
    l2 = element_interp_error(square, mesh, vals, both, 20000, np.random.default_rng(0), "l2")
    assert mx[0] / mx[1] == pytest.approx(4.0, rel=0.02)
    assert l2[0] / l2[1] == pytest.approx(8.0, rel=0.05)
    with pytest.raises(InvalidInputError, match="norm"):
        element_interp_error(square, mesh, vals, both, 8, np.random.default_rng(0), "l1")
    with pytest.raises(InvalidInputError, match="indicator"):
        error_amr(square, dom, 100, indicator="l1", progress=False)


def test_field_maps_physical_domain_and_units():
    m = MLP([2, 1], ["identity"])
    with torch.no_grad():
        m.weights[0].copy_(torch.tensor([[1.0, 0.0]]))
        m.biases[0].zero_()
    header = {"signal": {"domain": [[0, 10], [0, 1]], "value_scale": [2.0], "value_offset": [3.0]}}
    field = InrField.from_model(m, header)
    x = np.array([[0.0, 0.5], [5.0, 0.5], [10.0, 0.5]])
    assert np.allclose(field(x)[:, 0], 2.0 * np.array([-1.0, 0.0, 1.0]) + 3.0)
    mesh = uniform_mesh(field.model_domain, 1, base=1)
    assert np.allclose(mesh.vertices.max(0), [10, 1])
    assert mesh_rmse(mesh, vertex_values(field, mesh), field) < 1e-6  # linear field: exact


@pytest.mark.skipif(not (SHARED / "volumes" / "hydrogen.vti").exists(), reason="needs ../shared/data (absent)")
def test_hydrogen_volume_field_meshes_in_3d(tmp_path):
    from inrkit.signals import load_signal

    sig = load_signal(SHARED / "volumes" / "hydrogen.vti")
    assert sig.dim == 3
    g = torch.Generator().manual_seed(0)
    m = MLP([3, 16, 1], ["tanh", "identity"])
    for w in m.weights:
        torch.nn.init.normal_(w, std=1.0, generator=g)
    field = InrField.from_model(m, {"signal": sig.metadata()})
    res = pruning_amr(field, field.model_domain, PruningAMRConfig(max_iters=1, init_level=0, base=2, n_id=32,
                                                                  n_err=16, progress=False))
    assert res.mesh.dim == 3 and res.mesh.num_elements >= 8


def test_id_on_original_activations_uses_the_original_networks_ranks():
    """id_activations="original" (the reference code): each layer's rank is the ID rank of the ORIGINAL network's
    activations of that layer; "pruned" (default) agrees on the first layer; both prune to small errors."""
    torch.manual_seed(0)
    model = MLP([2, 24, 24, 24, 1], ["tanh", "tanh", "tanh", "identity"])
    for w in model.weights:
        torch.nn.init.normal_(w, std=1.0)
    model = model.double()
    g = torch.Generator().manual_seed(1)
    x_id = torch.rand(3, 256, 2, generator=g, dtype=torch.float64) * 0.5
    x_err = torch.rand(3, 64, 2, generator=g, dtype=torch.float64) * 0.5
    _, err_o, kept_o = element_pruning_stats(model, x_id, x_err, 1e-3, id_activations="original")
    _, err_p, kept_p = element_pruning_stats(model, x_id, x_err, 1e-3, id_activations="pruned")
    h = model.encode(x_id.reshape(-1, 2))
    ranks = []
    with torch.no_grad():
        for layer in range(model.num_layers - 1):
            h = model.layer_forward(layer, h)
            ranks.append(batched_id(h.reshape(3, 256, -1), 1e-3)[0])
    assert kept_o.tolist() == torch.stack(ranks, 1).tolist()
    assert kept_o[:, 0].tolist() == kept_p[:, 0].tolist()
    assert err_o.max() < 0.05 and err_p.max() < 0.05
    with pytest.raises(InvalidInputError):
        element_pruning_stats(model, x_id, x_err, 1e-3, id_activations="nope")
    with pytest.raises(InvalidInputError):
        PruningAMRConfig(id_activations="nope").validate()
