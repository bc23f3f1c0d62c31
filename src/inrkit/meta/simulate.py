"""Small, real simulations on a grid that write a time-varying or ensemble volume series.

Two generators, both vectorised NumPy on an ``n^3`` grid and deterministic given a seed:

- ``vortex``: a passive scalar advected (semi-Lagrangian, trilinear back-tracing) and
  diffused (explicit 7-point Laplacian, zero-flux walls) by LeVeque's time-dependent 3D
  vortex deformation flow in the unit cube, ``u = s*cos(pi t / T_p) * (2 sin^2(pi x) sin(2 pi y)
  sin(2 pi z), -sin(2 pi x) sin^2(pi y) sin(2 pi z), -sin(2 pi x) sin(2 pi y) sin^2(pi z))``.
  Ensemble parameter: the vortex strength ``s``.
- ``grayscott``: the 3D Gray-Scott reaction-diffusion system (periodic box, forward Euler).
  Ensemble parameter: the feed rate ``F``.

``--ensemble N`` runs N members that differ only in that parameter (same seed, same initial
state) and keeps each member's final state; otherwise one run's frames are the series.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from inrkit.errors import InvalidInputError
from inrkit.utils import atomic_write, write_json

SERIES_FORMAT = "inrkit-series"
KINDS = ("vortex", "grayscott")
#: default parameter range swept by ``--ensemble`` for each kind: (name, low, high)
ENSEMBLE_RANGES: dict[str, tuple[str, float, float]] = {
    "vortex": ("strength", 0.5, 1.5),
    "grayscott": ("feed", 0.030, 0.046),
}


def _check_size(size: int, steps: int) -> None:
    if not 4 <= int(size) <= 1024:
        raise InvalidInputError(f"--size must be in [4, 1024], got {size}")
    if not 1 <= int(steps) <= 100000:
        raise InvalidInputError(f"--steps must be >= 1, got {steps}")


def _cell_centres(n: int) -> np.ndarray:
    return ((np.arange(n, dtype=np.float64) + 0.5) / n)


def _laplacian_neumann(f: np.ndarray) -> np.ndarray:
    """7-point Laplacian (grid spacing 1) with zero-flux walls."""
    p = np.pad(f, 1, mode="edge")
    return (p[2:, 1:-1, 1:-1] + p[:-2, 1:-1, 1:-1] + p[1:-1, 2:, 1:-1] + p[1:-1, :-2, 1:-1]
            + p[1:-1, 1:-1, 2:] + p[1:-1, 1:-1, :-2] - 6.0 * f)


def _laplacian_periodic(f: np.ndarray) -> np.ndarray:
    """7-point Laplacian (grid spacing 1) on a periodic box."""
    out = -6.0 * f
    for axis in range(3):
        out += np.roll(f, 1, axis) + np.roll(f, -1, axis)
    return out


def _vortex_initial(n: int, rng: np.random.Generator) -> np.ndarray:
    """LeVeque's sphere plus a few seeded Gaussian blobs, values in [0, 1]."""
    x = _cell_centres(n)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    r = np.sqrt((X - 0.35) ** 2 + (Y - 0.35) ** 2 + (Z - 0.35) ** 2)
    field = 0.5 * (1.0 - np.tanh((r - 0.15) / 0.03))
    for _ in range(4):
        c = rng.uniform(0.2, 0.8, 3)
        s = rng.uniform(0.05, 0.12)
        a = rng.uniform(0.3, 0.8)
        field += a * np.exp(-((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2) / (2 * s * s))
    return (field / field.max()).astype(np.float64)


def _vortex_velocity(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spatial part of the deformation flow, in units of the unit cube per unit time."""
    x = _cell_centres(n)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    s2x, s2y, s2z = np.sin(2 * np.pi * X), np.sin(2 * np.pi * Y), np.sin(2 * np.pi * Z)
    u = 2.0 * np.sin(np.pi * X) ** 2 * s2y * s2z
    v = -s2x * np.sin(np.pi * Y) ** 2 * s2z
    w = -s2x * s2y * np.sin(np.pi * Z) ** 2
    return u, v, w


def simulate_vortex(size: int = 32, steps: int = 20, *, strength: float = 1.0,
                    diffusivity: float = 2e-4, duration: float = 1.0, period: float = 3.0,
                    seed: int = 0, progress: bool = False) -> np.ndarray:
    """Scalar advected by a time-dependent vortex flow and diffused.

    Args:
        size: grid cells per axis (the cube is ``[0, 1]^3``).
        steps: number of output frames; frame ``k`` is the state at ``t = (k+1) duration/steps``.
        strength: velocity scale ``s`` (the ensemble parameter).
        diffusivity: kappa in ``phi_t + u . grad phi = kappa lap phi`` (unit-cube units).
        duration: simulated time spanned by the frames.
        period: the flow is modulated by ``cos(pi t / period)``.
        seed: seeds the initial blobs.
    Returns:
        ``float32`` array ``[steps, size, size, size]``.
    """
    _check_size(size, steps)
    n = int(size)
    rng = np.random.default_rng(seed)
    phi = _vortex_initial(n, rng)
    u, v, w = _vortex_velocity(n)
    h = 1.0 / n
    dt_frame = duration / steps
    # keep the back-trace under ~1.5 cells and explicit diffusion stable
    max_disp = 2.0 * abs(strength) * dt_frame / h
    sub = max(1, math.ceil(max_disp / 1.5), math.ceil(diffusivity * dt_frame / h**2 / 0.15))
    dt = dt_frame / sub
    idx = np.indices((n, n, n), dtype=np.float64)
    out = np.empty((steps, n, n, n), dtype=np.float32)
    t = 0.0
    for k in tqdm(range(steps), desc="vortex", disable=not progress, leave=False):
        for _ in range(sub):
            scale = strength * math.cos(math.pi * (t + 0.5 * dt) / period) * dt / h
            coords = idx - scale * np.stack([u, v, w])
            phi = ndimage.map_coordinates(phi, coords, order=1, mode="nearest")
            phi = phi + (diffusivity * dt / h**2) * _laplacian_neumann(phi)
            t += dt
        out[k] = phi
    return out


def simulate_grayscott(size: int = 32, steps: int = 20, *, feed: float = 0.037,
                       kill: float = 0.06, du: float = 0.16, dv: float = 0.08,
                       iterations_per_step: int = 100, dt: float = 0.5, seed: int = 0,
                       progress: bool = False) -> np.ndarray:
    """3D Gray-Scott reaction-diffusion; returns the ``v`` concentration per frame.

    ``u_t = du lap u - u v^2 + F (1 - u)``, ``v_t = dv lap v + u v^2 - (F + k) v`` on a periodic
    grid of spacing 1 (forward Euler, stable for ``d dt <= 1/6``). The initial state is
    ``u = 1, v = 0`` with a few seeded cubes of ``u = 0.5, v = 0.25`` plus 1% noise.

    Returns:
        ``float32`` array ``[steps, size, size, size]``.
    """
    _check_size(size, steps)
    if max(du, dv) * dt > 1.0 / 6.0 + 1e-12:
        raise InvalidInputError("Gray-Scott: diffusion * dt must be <= 1/6 for stability")
    n = int(size)
    rng = np.random.default_rng(seed)
    U = np.ones((n, n, n))
    V = np.zeros((n, n, n))
    half = min(max(2, n // 10), (n - 1) // 2)  # seeds fit on small grids too (size 4 is the minimum)
    for _ in range(max(3, n // 8)):
        c = rng.integers(half, n - half, 3)
        sl = tuple(slice(ci - half, ci + half) for ci in c)
        U[sl], V[sl] = 0.5, 0.25
    U += 0.01 * rng.standard_normal(U.shape)
    V += 0.01 * rng.standard_normal(V.shape)
    out = np.empty((steps, n, n, n), dtype=np.float32)
    for k in tqdm(range(steps), desc="grayscott", disable=not progress, leave=False):
        for _ in range(int(iterations_per_step)):
            uvv = U * V * V
            U = U + dt * (du * _laplacian_periodic(U) - uvv + feed * (1.0 - U))
            V = V + dt * (dv * _laplacian_periodic(V) + uvv - (feed + kill) * V)
        out[k] = V
    return out


SIMULATORS: dict[str, Callable[..., np.ndarray]] = {
    "vortex": simulate_vortex,
    "grayscott": simulate_grayscott,
}


def write_series(folder: str | Path, volumes: np.ndarray, *, name: str,
                 labels: list[float], label_name: str, attrs: dict[str, Any] | None = None) -> Path:
    """Write ``volumes [T, X, Y, Z]`` as ``.npy`` members plus ``manifest.json``; return the manifest path.

    The manifest: ``{"format": "inrkit-series", "version": 1, "name", "dims", "dtype",
    "files", "label_name", "labels", ("timesteps" | "parameters"), "attrs"}``.
    """
    volumes = np.asarray(volumes)
    if volumes.ndim != 4 or volumes.shape[0] < 1:
        raise InvalidInputError(f"expected volumes [T, X, Y, Z], got shape {volumes.shape}")
    if len(labels) != volumes.shape[0]:
        raise InvalidInputError("one label per member is required")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, vol in enumerate(volumes):
        fname = f"{name}_{i:04d}.npy"
        with atomic_write(folder / fname) as fh:
            np.save(fh, np.ascontiguousarray(vol), allow_pickle=False)
        files.append(fname)
    manifest: dict[str, Any] = {
        "format": SERIES_FORMAT, "version": 1, "name": name,
        "dims": [int(d) for d in volumes.shape[1:]], "dtype": str(volumes.dtype),
        "files": files, "label_name": label_name, "labels": [float(v) for v in labels],
        "attrs": attrs or {},
    }
    if label_name == "time":
        manifest["timesteps"] = manifest["labels"]
    else:
        manifest["parameters"] = [{label_name: float(v)} for v in labels]
    return write_json(folder / "manifest.json", manifest)


def generate_series(kind: str, out: str | Path, *, size: int = 32, steps: int = 20,
                    ensemble: int = 0, seed: int = 0, param_range: tuple[float, float] | None = None,
                    progress: bool = True, **params: Any) -> dict[str, Any]:
    """Run simulation ``kind`` and write a series folder; return a summary dict.

    Args:
        kind: ``"vortex"`` or ``"grayscott"``.
        out: output folder (created).
        size, steps, seed: grid size, number of frames, seed.
        ensemble: if > 0, run that many members sweeping the kind's ensemble parameter over
            ``param_range`` (default :data:`ENSEMBLE_RANGES`) and keep each final state.
        params: extra keyword parameters for the simulator.
    """
    if kind not in SIMULATORS:
        raise InvalidInputError(f"unknown simulation {kind!r}; choose from {', '.join(KINDS)}")
    if ensemble < 0:
        raise InvalidInputError("--ensemble must be >= 0")
    sim = SIMULATORS[kind]
    pname, lo, hi = ENSEMBLE_RANGES[kind]
    if param_range is not None:
        lo, hi = float(param_range[0]), float(param_range[1])
    attrs = {"simulation": kind, "size": size, "steps": steps, "seed": seed, **params}
    if ensemble:
        values = np.linspace(lo, hi, ensemble) if ensemble > 1 else np.array([(lo + hi) / 2])
        members = []
        for val in tqdm(values, desc=f"{kind} ensemble", disable=not progress):
            members.append(sim(size, steps, seed=seed, **{**params, pname: float(val)})[-1])
        volumes = np.stack(members)
        labels, label_name = [float(v) for v in values], pname
        attrs["ensemble"] = {"parameter": pname, "range": [lo, hi], "members": ensemble}
    else:
        volumes = sim(size, steps, seed=seed, progress=progress, **params)
        labels, label_name = [float(k) for k in range(steps)], "time"
    if not np.all(np.isfinite(volumes)):
        raise InvalidInputError(f"{kind} simulation diverged (non-finite values); reduce the time step")
    path = write_series(out, volumes, name=kind, labels=labels, label_name=label_name, attrs=attrs)
    return {"kind": kind, "folder": str(Path(out)), "manifest": str(path), "members": int(volumes.shape[0]),
            "dims": list(volumes.shape[1:]), "label_name": label_name,
            "min": float(volumes.min()), "max": float(volumes.max())}
