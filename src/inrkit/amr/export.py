"""Mesh output: VTU (quads / hexahedra with point data), PVD time series for 4D, PNG previews.

VTU files are binary with zlib-compressed data arrays (``VTU_COMPRESSION``): a 129^3 uniform mesh
shrinks from 315 MB to a fraction of it (docs/frames.md). Points are in the mesh's physical box.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from inrkit.amr.mesh import BoxMesh, corner_offsets
from inrkit.errors import InvalidInputError
from inrkit.utils import atomic_path, atomic_write

CELL_TYPES = {1: "line", 2: "quad", 3: "hexahedron"}
VTU_COMPRESSION = "zlib"  # meshio's binary VTU compressor (zlib, lzma or None); ParaView reads all three


def _as_2d(values: np.ndarray, n: int) -> np.ndarray:
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape[0] != n:
        raise InvalidInputError(f"expected {n} vertex values, got {vals.shape[0]}")
    return vals.reshape(n, -1)


def _point_data(values: np.ndarray, name: str) -> dict[str, np.ndarray]:
    if values.shape[1] == 1:
        return {name: values[:, 0].astype(np.float32)}
    return {name: values.astype(np.float32)}


def write_vtu_arrays(path: str | Path, points: np.ndarray, cells: np.ndarray, point_data: dict,
                     cell_data: dict | None = None, compression: str | None = VTU_COMPRESSION) -> Path:
    """Write an unstructured grid (``points [V, d<=3]``, ``cells [E, 2^d]``) as binary VTU, atomically.

    ``compression``: ``"zlib"`` (default), ``"lzma"`` or ``None`` (raw binary, larger and faster).
    """
    import meshio

    dim = points.shape[1]
    if dim not in CELL_TYPES:
        raise InvalidInputError(f"VTU export supports 1 to 3 dimensions, got {dim}")
    pts3 = np.zeros((len(points), 3))
    pts3[:, :dim] = points
    mesh = meshio.Mesh(pts3, [(CELL_TYPES[dim], cells.astype(np.int64))], point_data=point_data,
                       cell_data={k: [np.asarray(v)] for k, v in (cell_data or {}).items()})
    path = Path(path)
    with atomic_path(path) as tmp:  # meshio writes by file name: write beside the target, then replace
        meshio.write(tmp, mesh, file_format="vtu", binary=True, compression=compression)
    return path


def write_vtu(mesh: BoxMesh, values: np.ndarray, path: str | Path, name: str = "inr") -> Path:
    """Write a 1D-3D mesh with vertex ``values`` (``[V]`` or ``[V, C]``) as point data; cell data ``level``."""
    if mesh.dim > 3:
        raise InvalidInputError("4D meshes are written as a PVD series of 3D slices: use write_pvd")
    vals = _as_2d(values, mesh.num_vertices)
    return write_vtu_arrays(path, mesh.vertices, mesh.cells, _point_data(vals, name),
                            {"level": mesh.levels.astype(np.int32)})


def slice_4d(mesh: BoxMesh, values: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 3D slice of a 4D mesh at time ``t``: ``(points, hexahedra, values, levels)``.

    Elements whose time interval holds ``t`` are cut; vertex values are interpolated linearly in time.
    """
    if mesh.dim != 4:
        raise InvalidInputError("slice_4d needs a 4D mesh")
    vals = _as_2d(values, mesh.num_vertices)
    lo, hi = mesh.element_bounds()
    t_max = mesh.domain[3, 1]
    sel = (lo[:, 3] <= t) & ((t < hi[:, 3]) | ((t >= t_max) & (hi[:, 3] >= t_max)))
    elems = np.flatnonzero(sel)
    if len(elems) == 0:
        raise InvalidInputError(f"time {t} is outside the mesh's time range")
    w = ((t - lo[elems, 3]) / (hi[elems, 3] - lo[elems, 3]))[:, None, None]
    cells = mesh.cells[elems]  # [e, 16]: first 8 at t_lo, last 8 at t_hi (corner_offsets order)
    v = (1 - w) * vals[cells[:, :8]] + w * vals[cells[:, 8:]]  # [e, 8, C]
    pts = mesh.vertices[cells[:, :8], :3]  # [e, 8, 3]
    # Merge identical slice points; hanging nodes may carry element-dependent values, average them.
    flat = pts.reshape(-1, 3)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    acc = np.zeros((len(uniq), vals.shape[1]))
    np.add.at(acc, inverse, v.reshape(-1, vals.shape[1]))
    acc /= np.bincount(inverse, minlength=len(uniq))[:, None]
    return uniq, inverse.reshape(-1, 8), acc, mesh.levels[elems]


def slice_times(mesh: BoxMesh, max_slices: int = 32) -> np.ndarray:
    """Default slice times of a 4D mesh: its distinct vertex times, at most ``max_slices`` (evenly chosen)."""
    times = np.unique(mesh.vertices[:, 3])
    if len(times) > max_slices:
        times = times[np.unique(np.round(np.linspace(0, len(times) - 1, max_slices)).astype(int))]
    return times


def write_pvd(mesh: BoxMesh, values: np.ndarray, path: str | Path, times: np.ndarray | None = None,
              name: str = "inr") -> Path:
    """Write a 4D mesh as a PVD collection of 3D VTU slices (files ``<stem>_NNNN.vtu`` beside ``path``)."""
    path = Path(path)
    times = slice_times(mesh) if times is None else np.asarray(times, dtype=np.float64)
    entries = []
    for k, t in enumerate(times):
        pts, hexes, vals, levels = slice_4d(mesh, values, float(t))
        fname = f"{path.stem}_{k:04d}.vtu"
        write_vtu_arrays(path.parent / fname, pts, hexes, _point_data(vals, name),
                         {"level": levels.astype(np.int32)})
        entries.append(f'    <DataSet timestep="{float(t)!r}" group="" part="0" file={quoteattr(fname)}/>')
    xml = ('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">\n'
           "  <Collection>\n" + "\n".join(entries) + "\n  </Collection>\n</VTKFile>\n")
    with atomic_write(path, "w") as fh:
        fh.write(xml)
    return path


def write_mesh(mesh: BoxMesh, values: np.ndarray, path: str | Path, name: str = "inr") -> Path:
    """Write ``.vtu`` (1D-3D) or ``.pvd`` (4D) depending on the mesh dimension."""
    path = Path(path)
    if mesh.dim == 4:
        if path.suffix.lower() != ".pvd":
            path = path.with_suffix(".pvd")
        return write_pvd(mesh, values, path, name=name)
    if path.suffix.lower() != ".vtu":
        raise InvalidInputError(f"output of a {mesh.dim}D mesh must end in .vtu, got {path.name}")
    return write_vtu(mesh, values, path, name=name)


# ------------------------------------------------------------------- previews
def _edges_2d(mesh: BoxMesh) -> np.ndarray:
    lo, hi = mesh.element_bounds()
    c = np.stack([lo, np.stack([hi[:, 0], lo[:, 1]], 1), hi, np.stack([lo[:, 0], hi[:, 1]], 1)], 1)
    return np.stack([c, np.roll(c, -1, axis=1)], axis=2).reshape(-1, 2, 2)


def _plot_2d(ax, mesh: BoxMesh, values: np.ndarray, res: int = 400) -> None:
    from matplotlib.collections import LineCollection

    d = mesh.domain
    xs = np.linspace(d[0, 0], d[0, 1], res)
    ys = np.linspace(d[1, 0], d[1, 1], res)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    field = mesh.interpolate(values[:, 0], np.stack([gx.ravel(), gy.ravel()], 1)).reshape(res, res)
    im = ax.imshow(field, origin="lower", extent=(d[0, 0], d[0, 1], d[1, 0], d[1, 1]), cmap="viridis",
                   interpolation="nearest", aspect="auto")
    lw = 0.6 if mesh.num_elements < 2000 else 0.25
    ax.add_collection(LineCollection(list(_edges_2d(mesh)), colors="white", linewidths=lw, alpha=0.8))
    ax.set_xlim(d[0]), ax.set_ylim(d[1])
    ax.figure.colorbar(im, ax=ax, shrink=0.8)


def _render_pyvista(vtu: Path, png: Path, timeout: float = 120.0) -> bool:
    """Off-screen pyvista render of ``vtu`` in a subprocess (a missing GL context cannot crash us)."""
    code = (
        "import sys, pyvista as pv\n"
        "pv.OFF_SCREEN = True\n"
        "m = pv.read(sys.argv[1])\n"
        "p = pv.Plotter(off_screen=True, window_size=(900, 700))\n"
        "c = m.clip(normal='y', origin=m.center) if m.n_cells > 8 else m\n"
        "p.add_mesh(c, scalars=m.point_data.keys()[0], show_edges=True, edge_color='white', line_width=0.5)\n"
        "p.add_mesh(m.outline(), color='black')\n"
        "p.camera_position = 'iso'\n"
        "p.screenshot(sys.argv[2])\n"
    )
    try:
        res = subprocess.run([sys.executable, "-c", code, str(vtu), str(png)], capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and png.exists() and png.stat().st_size > 0


def preview_png(mesh: BoxMesh, values: np.ndarray, path: str | Path, title: str = "",
                use_pyvista: bool = True) -> dict:
    """Write a PNG showing the mesh and the field; returns ``{"path", "renderer"}``.

    2D: matplotlib image of the interpolant with element edges. 3D: off-screen pyvista (clipped mesh with
    edges) when it works, else a matplotlib mid-plane slice. 4D: the 3D preview of the middle time slice.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vals = _as_2d(values, mesh.num_vertices)
    if mesh.dim >= 3 and use_pyvista:
        with tempfile.TemporaryDirectory() as tmp:
            vtu = Path(tmp) / "preview.vtu"
            if mesh.dim == 3:
                write_vtu(mesh, vals, vtu)
            else:
                t = float(np.median(slice_times(mesh)))
                pts, hexes, v, _ = slice_4d(mesh, vals, t)
                write_vtu_arrays(vtu, pts, hexes, _point_data(v, "inr"))
            tmp_png = Path(tmp) / "preview.png"
            if _render_pyvista(vtu, tmp_png):
                with atomic_write(path, "wb") as fh:
                    fh.write(tmp_png.read_bytes())
                return {"path": str(path), "renderer": "pyvista"}
    fig, ax = plt.subplots(figsize=(7, 6))
    if mesh.dim == 2:
        _plot_2d(ax, mesh, vals)
    elif mesh.dim >= 3:
        _plot_slice(ax, mesh, vals)
    else:
        x = mesh.vertices[:, 0]
        order = np.argsort(x)
        ax.plot(x[order], vals[order, 0], "-o", ms=2)
    ax.set_title(title or f"{mesh.num_elements} elements, {mesh.dofs} DOFs")
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return {"path": str(path), "renderer": "matplotlib"}


def _plot_slice(ax, mesh: BoxMesh, vals: np.ndarray, res: int = 300) -> None:
    """Matplotlib fallback for 3D/4D: the x-y plane through the domain centre (and mid time)."""
    from matplotlib.collections import LineCollection

    d = mesh.domain
    centre = d.mean(axis=1)
    xs, ys = np.linspace(d[0, 0], d[0, 1], res), np.linspace(d[1, 0], d[1, 1], res)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    pts = np.tile(centre, (res * res, 1))
    pts[:, 0], pts[:, 1] = gx.ravel(), gy.ravel()
    field = mesh.interpolate(vals[:, 0], pts).reshape(res, res)
    im = ax.imshow(field, origin="lower", extent=(d[0, 0], d[0, 1], d[1, 0], d[1, 1]), cmap="viridis", aspect="auto")
    lo, hi = mesh.element_bounds()
    cut = np.all((lo[:, 2:] <= centre[2:]) & (centre[2:] < hi[:, 2:]), axis=1)
    sub = BoxMesh(d[:2], mesh.base[:2], mesh.levels[cut], mesh.index[cut][:, :2])
    ax.add_collection(LineCollection(list(_edges_2d(sub)), colors="white", linewidths=0.3, alpha=0.8))
    ax.set_xlim(d[0]), ax.set_ylim(d[1])
    ax.figure.colorbar(im, ax=ax, shrink=0.8)


__all__ = ["write_vtu", "write_vtu_arrays", "write_pvd", "write_mesh", "slice_4d", "slice_times",
           "preview_png", "corner_offsets"]
