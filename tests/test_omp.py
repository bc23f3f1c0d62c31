"""Seeded dictionary and batched OMP (checked against scikit-learn)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from sklearn.linear_model import orthogonal_mp

import inrkit.compress.encode.omp as omp_module
from inrkit.compress.decode.dictionary import _log, _sincos_quarter, gaussian, sensing_matrix
from inrkit.compress.encode.omp import omp, to_dense

_CPU_SCREEN = omp_module._screen_dtype(torch.device("cpu"), 64, 512)
SCREEN_TYPES = [torch.float32] + ([torch.bfloat16] if _CPU_SCREEN == torch.bfloat16 else [])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_log_and_sincos_match_numpy():
    x = np.random.default_rng(0).random(20000) + 1e-300
    assert np.allclose(_log(x), np.log(x), rtol=1e-14, atol=1e-15)
    phi = np.random.default_rng(1).random(20000) * (np.pi / 2)
    s, c = _sincos_quarter(phi)
    assert np.abs(s - np.sin(phi)).max() < 1e-15 and np.abs(c - np.cos(phi)).max() < 1e-15


def test_gaussian_statistics():
    g = gaussian(200001, seed=7)
    assert g.shape == (200001,)
    assert abs(g.mean()) < 0.01 and abs(g.std() - 1) < 0.01
    from scipy import stats

    assert stats.kstest(g, "norm").pvalue > 1e-3


def test_dictionary_is_seeded_normalised_and_bit_stable():
    a = sensing_matrix(16, 48, 3)
    assert a.shape == (16, 48) and a.dtype == np.float64
    assert np.allclose(np.linalg.norm(a, axis=0), 1.0, atol=1e-14)
    assert np.array_equal(a, sensing_matrix(16, 48, 3))
    assert not np.array_equal(a, sensing_matrix(16, 48, 4))
    assert not a.flags.writeable
    # golden digest: the dictionary must be the same bits on every machine
    digest = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    assert digest == GOLDEN_16x48_SEED3, digest


GOLDEN_16x48_SEED3 = "527834bda5641385fcc51cd6903c4c767534d90ea641f553e3804d9e38b80fe9"


def test_dictionary_rejects_bad_shape():
    with pytest.raises(ValueError):
        sensing_matrix(8, 4, 0)


# (64, 520, 28): padded 64-column blocks; (64, ...) and (128, ...) screen in bfloat16 where the CPU can
@pytest.mark.parametrize("k1,k2,s", [(32, 64, 8), (24, 96, 11), (50, 50, 20), (64, 520, 28), (128, 1024, 51)])
def test_omp_matches_sklearn(k1, k2, s):
    a = sensing_matrix(k1, k2, 0)
    y = np.random.default_rng(k1).standard_normal((300 if k1 < 128 else 100, k1))
    idx, coef = omp(a, y, s)
    assert idx.shape == (len(y), s) and coef.shape == (len(y), s)
    ours = to_dense(idx, coef, k2).numpy()
    ref = orthogonal_mp(a, y.T, n_nonzero_coefs=s).T
    assert np.array_equal(ours != 0, ref != 0)  # same supports
    assert np.abs(ours - ref).max() < 1e-5


def test_omp_recovers_exact_sparse_codes_and_chunks_agree():
    rng = np.random.default_rng(5)
    a = sensing_matrix(64, 128, 1)
    truth = np.zeros((200, 128))
    for row in truth:
        row[rng.choice(128, 4, replace=False)] = rng.uniform(1, 2, 4) * rng.choice([-1, 1], 4)
    y = truth @ a.T
    idx, coef = omp(a, y, 4)
    assert np.abs(to_dense(idx, coef, 128).numpy() - truth).max() < 1e-10
    idx2, coef2 = omp(a, y, 4, chunk_bytes=1)  # one signal per chunk
    assert torch.equal(idx, idx2) and torch.allclose(coef, coef2, atol=1e-12)


def test_omp_exact_ties_take_the_first_index_like_sklearn():
    # duplicated atoms give exact ties: both pass the screen and the exact comparison takes the first
    a = np.array(sensing_matrix(16, 40, 2))
    a[:, 30] = a[:, 7]
    a[:, 33] = -a[:, 12]
    rng = np.random.default_rng(3)
    y = np.concatenate([a[:, [7]].T * 2.0, (a[:, [12]] * rng.uniform(-2, 2, (1, 20))).T,
                        rng.standard_normal((40, 16))])
    idx, coef = omp(a, y, 6)
    ref = orthogonal_mp(a, y.T, n_nonzero_coefs=6).T
    ours = to_dense(idx, coef, 40).numpy()
    assert idx[0, 0] == 7 and torch.all(idx[1:21, 0] == 12) and np.all(np.isfinite(coef.numpy()))
    assert np.array_equal(ours[21:] != 0, ref[21:] != 0) and np.abs(ours[21:] - ref[21:]).max() < 1e-5


def test_omp_zero_vectors_and_float32():
    a = sensing_matrix(16, 32, 0)
    idx, coef = omp(a, np.zeros((3, 16)), 5)
    assert torch.all(coef == 0) and idx.unique(dim=1).shape[1] == 5
    y = np.random.default_rng(0).standard_normal((50, 16))
    i64, c64 = omp(a, y, 5)
    i32, c32 = omp(a, y, 5, dtype=torch.float32)
    assert c32.dtype == torch.float32
    assert (i64 == i32).float().mean() > 0.95


@pytest.mark.parametrize("screen_type", SCREEN_TYPES)
def test_screening_error_bound_holds(screen_type):
    a = torch.from_numpy(np.array(sensing_matrix(96, 700, 4)))
    screen = omp_module._make_screen(a, screen_type)
    rng = np.random.default_rng(0)
    resid = torch.from_numpy(rng.standard_normal((400, 96)) * 10.0 ** rng.uniform(-30, 30, (400, 1)))
    resid[:50, ::2] *= 1e-6  # badly scaled entries within a row
    rounded = resid.to(screen.matrix.dtype)
    score = torch.mm(rounded, screen.matrix).float().abs()[:, :700].double()
    exact = (resid @ a).abs()
    err = omp_module._screen_error(screen, resid, rounded).double()
    rel = screen.unit / (1 - screen.unit)
    gap = (score - exact).abs() - (rel * score + err.unsqueeze(1))
    assert float(gap.max()) <= 0
    # and it is not vacuous: the bound is a small fraction of the top score
    assert float((err / exact.amax(dim=1)).median()) < (0.02 if screen_type == torch.bfloat16 else 1e-4)


@pytest.mark.parametrize("screen_type", SCREEN_TYPES)
def test_screened_selection_equals_exact_scoring(screen_type, monkeypatch):
    a = sensing_matrix(64, 512, 1)
    y = np.random.default_rng(2).standard_normal((500, 64))
    make = omp_module._make_screen
    monkeypatch.setattr(omp_module, "_make_screen", lambda d: make(d, screen_type))
    idx, coef = omp(a, y, 25)
    monkeypatch.setattr(omp_module, "_make_screen", lambda d: None)
    idx_exact, coef_exact = omp(a, y, 25)
    assert torch.equal(idx, idx_exact) and torch.allclose(coef, coef_exact, rtol=0, atol=1e-12)


def test_float32_mode_with_a_bfloat16_screen_tracks_float64():
    a = sensing_matrix(64, 512, 3)
    y = np.random.default_rng(6).standard_normal((300, 64))
    i64, c64 = omp(a, y, 25)
    i32, c32 = omp(a, y, 25, dtype=torch.float32)
    same = (i64 == i32).all(dim=1)
    assert c32.dtype == torch.float32 and float(same.float().mean()) >= 0.99
    assert float((c32[same].double() - c64[same]).abs().max()) < 1e-4


def test_omp_is_exact_under_power_of_two_scaling():
    # tiny (bound dominated by the absolute term) and huge (possible overflow) rows take the exact path
    a = sensing_matrix(64, 512, 2)
    y = np.random.default_rng(4).standard_normal((60, 64))
    scaled = np.concatenate([y[:20] * 2.0**-120, y[20:40], y[40:] * 2.0**120])
    idx, coef = omp(a, scaled, 20)
    idx_ref, coef_ref = omp(a, y, 20)
    assert torch.equal(idx, idx_ref)
    back = coef.clone()
    back[:20] *= 2.0**120
    back[40:] *= 2.0**-120
    assert torch.allclose(back, coef_ref, rtol=1e-12, atol=0)


def test_omp_rejects_bad_inputs():
    a = sensing_matrix(8, 16, 0)
    with pytest.raises(ValueError):
        omp(a, np.zeros((2, 7)), 2)
    with pytest.raises(ValueError):
        omp(a, np.zeros((2, 8)), 9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_omp_on_gpu_matches_cpu():
    a = sensing_matrix(32, 64, 0)
    y = np.random.default_rng(0).standard_normal((100, 32))
    i_cpu, c_cpu = omp(a, y, 8)
    i_gpu, c_gpu = omp(a, y, 8, device="cuda")
    assert torch.equal(i_cpu, i_gpu.cpu()) and torch.allclose(c_cpu, c_gpu.cpu(), atol=1e-8)
