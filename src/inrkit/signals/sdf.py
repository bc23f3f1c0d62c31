"""Signed distance fields from triangle meshes, with SIREN's SDF loss (Sitzmann et al. 2020)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import MAX_MESH_FACES, MAX_MESH_VERTICES, MAX_TEXT_FILE_BYTES
from inrkit.metrics import chamfer_distance, normal_consistency
from inrkit.signals.base import Signal, predict
from inrkit.signals.kinds import SignalKind, check_grid_meta, register_kind
from inrkit.signals.readers import file_size
from inrkit.signals.render import extract_sdf_mesh, render_sdf

# Loss weights of SIREN's sdf loss (explore_siren / loss_functions.sdf).
W_SURFACE, W_NORMAL, W_EIKONAL, W_OFF = 3e3, 1e2, 5e1, 1e2


MESH_FORMATS = (".ply", ".obj", ".stl", ".off")


def _declared_counts(path: Path, size: int) -> tuple[int, int]:
    """``(vertices, faces)`` a mesh file declares, read from its header (PLY, OFF, binary STL) or counted (OBJ)."""
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if suffix == ".ply":
        end = head.find(b"end_header")
        if not head.startswith(b"ply") or end < 0:
            raise InvalidFileError(f"{path}: not a PLY file (no header)")
        counts: dict[str, int] = {}
        total = 0
        for line in head[:end].decode("latin-1").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "element":
                if not parts[2].isdigit() or len(parts[2]) > 12:
                    raise InvalidFileError(f"{path}: bad element count {parts[2][:20]!r}")
                counts[parts[1]] = int(parts[2])
                total += int(parts[2])
        if total > size:  # every element takes at least one byte
            raise InvalidFileError(f"{path}: header declares {total} elements in a {size}-byte file")
        return counts.get("vertex", 0), counts.get("face", 0)
    if suffix == ".off":
        tokens = [t for line in head.decode("latin-1").splitlines()[:64] for t in line.split("#")[0].split()]
        if not tokens or not tokens[0].endswith("OFF"):
            raise InvalidFileError(f"{path}: not an OFF file")
        try:
            nv, nf = (int(t[:12]) for t in tokens[1:3])
        except ValueError:
            raise InvalidFileError(f"{path}: bad OFF counts") from None
        if nv < 0 or nf < 0 or nv + nf > size:
            raise InvalidFileError(f"{path}: OFF header declares {nv} vertices and {nf} faces in {size} bytes")
        return nv, nf
    if suffix == ".stl":
        if len(head) >= 84 and 84 + 50 * int(np.frombuffer(head[80:84], "<u4")[0]) == size:
            nf = int(np.frombuffer(head[80:84], "<u4")[0])
            return 3 * nf, nf
        return size // 40, size // 100  # ASCII: a facet takes well over 100 bytes
    if suffix == ".obj":
        with open(path, "rb") as fh:
            data = fh.read()
        return data.count(b"\nv ") + data.startswith(b"v "), data.count(b"\nf ") + data.startswith(b"f ")
    raise InvalidFileError(f"{path}: unsupported mesh format {suffix!r} (use {', '.join(MESH_FORMATS)})")


def load_mesh(path: Path):
    """Load a triangle mesh with trimesh, its size checked first; raise InvalidFileError on failure.

    Bounds: the file at most ``MAX_TEXT_FILE_BYTES``; the vertices and faces its header declares (or an
    OBJ's lines) at most ``MAX_MESH_VERTICES``/``MAX_MESH_FACES``, checked before trimesh parses it.
    The file is handed to trimesh as an open file, so references in it (OBJ ``mtllib``, PLY textures)
    are never opened.
    """
    import trimesh

    path = Path(path)
    size = file_size(path)
    if size > MAX_TEXT_FILE_BYTES:
        raise InvalidFileError(f"{path}: {size} bytes (at most {MAX_TEXT_FILE_BYTES} for a mesh)")
    try:
        nv, nf = _declared_counts(path, size)
    except OSError as exc:
        raise InvalidFileError(f"{path}: cannot read mesh ({exc})") from None
    if nv > MAX_MESH_VERTICES or nf > MAX_MESH_FACES:
        raise InvalidFileError(f"{path}: {nv} vertices and {nf} faces (at most {MAX_MESH_VERTICES} and "
                               f"{MAX_MESH_FACES})")
    try:
        with open(path, "rb") as fh:
            mesh = trimesh.load(fh, file_type=path.suffix.lower().lstrip("."), force="mesh", process=True)
    except Exception as exc:  # trimesh raises many exception types for bad files
        if isinstance(exc, MemoryError):
            raise
        raise InvalidFileError(f"{path}: cannot read mesh ({str(exc)[:200]})") from None
    faces, vertices = getattr(mesh, "faces", None), getattr(mesh, "vertices", None)
    if faces is None or vertices is None or len(faces) == 0:
        raise InvalidFileError(f"{path}: mesh has no triangles")
    if len(vertices) > MAX_MESH_VERTICES or len(faces) > MAX_MESH_FACES:
        raise InvalidFileError(f"{path}: mesh is too large ({len(vertices)} vertices, {len(faces)} faces)")
    if not np.isfinite(np.asarray(vertices)).all():
        raise InvalidFileError(f"{path}: mesh has non-finite vertices")
    return mesh


class SDFSignal(Signal):
    """A surface given by a mesh, fitted as a signed distance function in [-1, 1]^3.

    The mesh is centred and scaled so its bounding box fits in [-0.9, 0.9]^3. Each batch holds
    ``batch_size // 2`` on-surface points (with normals) and as many uniform points in the box.

    Args:
        mesh: a trimesh mesh.
        num_points: on-surface points sampled once (with their face normals).
        eval_resolution: marching-cubes grid for evaluation.
        seed: sampling seed.
    """

    kind = "sdf"
    dim, out_dim = 3, 1
    supports_bf16 = False  # the eikonal and normal terms differentiate through the inputs

    def __init__(self, mesh, num_points: int = 100_000, eval_resolution: int = 64, seed: int = 0,
                 name: str = "") -> None:
        import trimesh

        lo, hi = mesh.bounds
        self.center = (lo + hi) / 2.0
        self.half = float(np.max(hi - lo)) / 2.0 / 0.9
        if not np.isfinite(self.half) or self.half <= 0:
            raise InvalidInputError("mesh is degenerate (zero extent)")
        self.mesh = mesh.copy()
        self.mesh.apply_translation(-self.center)
        self.mesh.apply_scale(1.0 / self.half)
        points, faces = trimesh.sample.sample_surface(self.mesh, num_points, seed=seed)
        self.points = torch.from_numpy(np.asarray(points, dtype=np.float32))
        self.normals = torch.from_numpy(np.asarray(self.mesh.face_normals[faces], dtype=np.float32))
        self.eval_resolution, self.name = eval_resolution, name

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "SDFSignal":
        path = Path(path)
        return cls(load_mesh(path), name=path.name, **kwargs)

    def metadata(self) -> dict[str, Any]:
        domain = [[float(c - self.half), float(c + self.half)] for c in self.center]
        return {"kind": self.kind, "name": self.name, "channels": 1, "domain": domain,
                "shape": [self.eval_resolution] * 3, "value_offset": [0.0], "value_scale": [self.half]}

    def num_samples(self) -> int:
        return int(self.points.shape[0])

    def train_batch(self, batch_size: int | None, generator: torch.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        half = (batch_size or 20_000) // 2
        idx = torch.randint(self.points.shape[0], (half,), generator=generator)
        off = torch.rand(half, 3, generator=generator) * 2.0 - 1.0
        coords = torch.cat([self.points[idx], off])
        targets = torch.zeros(2 * half, 4)
        targets[:half, 0] = 1.0  # on-surface flag
        targets[:half, 1:] = self.normals[idx]
        return coords.to(device), targets.to(device)

    def loss(self, model: torch.nn.Module, coords: Tensor, targets: Tensor) -> tuple[Tensor, Tensor | None]:
        """SIREN's SDF loss: |f| and normal alignment on the surface, eikonal everywhere,
        ``exp(-100 |f|)`` off the surface."""
        coords = coords.detach().requires_grad_(True)
        sdf = model(coords)[:, 0]
        (grad,) = torch.autograd.grad(sdf.sum(), coords, create_graph=True)
        on = targets[:, 0] > 0.5
        surface = sdf[on].abs().mean()
        normal = (1.0 - torch.nn.functional.cosine_similarity(grad[on], targets[on, 1:], dim=-1)).mean()
        eikonal = (grad.norm(dim=-1) - 1.0).abs().mean()
        off = torch.exp(-100.0 * sdf[~on].abs()).mean()
        return W_SURFACE * surface + W_NORMAL * normal + W_EIKONAL * eikonal + W_OFF * off, None

    def extract_mesh(self, model: torch.nn.Module, resolution: int | None = None):
        """Zero level set of the model by marching cubes, in the normalised box (a trimesh)."""
        return extract_sdf_mesh(model, int(resolution or self.eval_resolution))

    def evaluate(self, model: torch.nn.Module, num_points: int = 30_000) -> dict[str, float]:
        import trimesh

        mesh = self.extract_mesh(model)
        if len(mesh.faces) == 0:
            return {"chamfer": float("inf"), "normal_consistency": 0.0, "surface_abs": float("nan")}
        pts, faces = trimesh.sample.sample_surface(mesh, num_points, seed=1)
        n_ref = self.points.shape[0]
        ref_idx = np.random.default_rng(1).choice(n_ref, min(num_points, n_ref), replace=False)
        ref_pts, ref_nrm = self.points[ref_idx].numpy(), self.normals[ref_idx].numpy()
        on_surface = predict(model, torch.from_numpy(ref_pts)).abs().mean()
        return {
            "chamfer": chamfer_distance(pts, ref_pts),
            "normal_consistency": normal_consistency(pts, mesh.face_normals[faces], ref_pts, ref_nrm),
            "surface_abs": float(on_surface),
        }


def load_sdf(path: str | Path, test_fraction: float = 0.0, seed: int = 0, num_points: int = 100_000,
             **_: Any) -> SDFSignal:
    """A triangle mesh as an SDF signal (``num_points`` surface samples)."""
    return SDFSignal.from_file(path, num_points=num_points, seed=seed)


register_kind(SignalKind("sdf", MESH_FORMATS, load_sdf, render_sdf,
                         lambda meta, out_dim: check_grid_meta(meta, out_dim, dims=3)))
