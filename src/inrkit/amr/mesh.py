"""Non-conforming 2^d-tree meshes of axis-aligned boxes in 2, 3 and 4 dimensions.

An element is stored by its refinement ``level`` and integer ``index`` on the
level's lattice (``base * 2**level`` cells per axis). Vertices are identified by
integer keys on the lattice of the finest level present, so vertices shared by
elements of different levels (including hanging nodes) get one id each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

from inrkit.errors import InvalidInputError

MAX_LEVEL = 24


def corner_offsets(dim: int) -> np.ndarray:
    """Corner offsets ``[2**dim, dim]`` in VTK order (quad / hexahedron; 4D = two hexahedra in time)."""
    quad = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.int64)
    if dim == 1:
        return np.array([[0], [1]], dtype=np.int64)
    if dim == 2:
        return quad
    lower = corner_offsets(dim - 1)
    zeros, ones = np.zeros((len(lower), 1), np.int64), np.ones((len(lower), 1), np.int64)
    return np.concatenate([np.hstack([lower, zeros]), np.hstack([lower, ones])])


def parse_domain(text: str | list | tuple | np.ndarray, dim: int | None = None) -> np.ndarray:
    """Parse ``"-1,1,-1,1"`` (or a flat/2-column sequence) into an array ``[dim, 2]`` of (lo, hi)."""
    try:
        if isinstance(text, str):
            vals = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
        else:
            vals = [float(v) for v in np.asarray(text, dtype=np.float64).ravel()]
    except ValueError as exc:
        raise InvalidInputError(f"domain must be comma-separated numbers 'lo,hi,...': {text!r}") from exc
    if len(vals) == 0 or len(vals) % 2:
        raise InvalidInputError(f"domain needs a (min, max) pair per axis, got {len(vals)} numbers")
    dom = np.array(vals, dtype=np.float64).reshape(-1, 2)
    if dim is not None and len(dom) != dim:
        raise InvalidInputError(f"domain has {len(dom)} axes but the model takes {dim} coordinates")
    if not np.all(np.isfinite(dom)) or np.any(dom[:, 1] <= dom[:, 0]):
        raise InvalidInputError(f"domain needs finite min < max on every axis: {dom.tolist()}")
    return dom


@dataclass
class BoxMesh:
    """A 2^d-tree mesh over the box ``domain`` (``[d, 2]``) with ``base`` coarse cells per axis.

    Args:
        domain: ``[d, 2]`` array of (lo, hi) per axis.
        base: number of level-0 cells per axis (``[d]``).
        levels: ``[E]`` refinement level of each element.
        index: ``[E, d]`` integer position of each element on its level's lattice.
    """

    domain: np.ndarray
    base: np.ndarray
    levels: np.ndarray
    index: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ build
    @classmethod
    def uniform(cls, domain, base: int | list[int] | np.ndarray = 1, level: int = 0) -> "BoxMesh":
        """A uniform mesh: ``base`` cells per axis, refined ``level`` times."""
        dom = parse_domain(domain)
        dim = len(dom)
        if not 1 <= dim <= 4:
            raise InvalidInputError(f"meshes support 1 to 4 dimensions, got {dim}")
        b = np.broadcast_to(np.asarray(base, dtype=np.int64), (dim,)).copy()
        if np.any(b < 1) or not 0 <= level <= MAX_LEVEL:
            raise InvalidInputError(f"base must be >= 1 and level in [0, {MAX_LEVEL}]")
        n = b * 2**level
        if int(np.prod(n)) > 50_000_000:
            raise InvalidInputError(f"uniform level {level} would create {int(np.prod(n))} elements")
        grids = np.meshgrid(*[np.arange(k) for k in n], indexing="ij")
        index = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
        return cls(dom, b, np.full(len(index), level, np.int64), index)

    @property
    def dim(self) -> int:
        return int(self.domain.shape[0])

    @property
    def num_elements(self) -> int:
        return int(self.levels.shape[0])

    @property
    def max_level(self) -> int:
        return int(self.levels.max()) if self.num_elements else 0

    def refine(self, marked: np.ndarray) -> "BoxMesh":
        """Return a new mesh where each marked element (bool ``[E]`` or indices) is split into 2^d children."""
        sel = np.asarray(marked)
        if sel.dtype == bool:
            if sel.shape != (self.num_elements,):
                raise InvalidInputError(f"refine mask needs {self.num_elements} entries, got {sel.shape}")
            mask = sel.copy()
        else:
            mask = np.zeros(self.num_elements, bool)
            mask[sel.astype(np.int64).ravel()] = True
        if not mask.any():
            return self
        if self.levels[mask].max() >= MAX_LEVEL:
            raise InvalidInputError(f"refinement beyond level {MAX_LEVEL} is not supported")
        offs = np.array(list(product((0, 1), repeat=self.dim)), dtype=np.int64)
        kid_idx = (self.index[mask][:, None, :] * 2 + offs[None]).reshape(-1, self.dim)
        kid_lvl = np.repeat(self.levels[mask] + 1, len(offs))
        return BoxMesh(self.domain, self.base,
                       np.concatenate([self.levels[~mask], kid_lvl]),
                       np.concatenate([self.index[~mask], kid_idx]))

    def refine_uniform(self, times: int = 1) -> "BoxMesh":
        """Refine every element ``times`` times."""
        mesh = self
        for _ in range(times):
            mesh = mesh.refine(np.ones(mesh.num_elements, bool))
        return mesh

    # --------------------------------------------------------------- geometry
    def _lattice_n(self, level: int) -> np.ndarray:
        return self.base * 2**level

    def element_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Physical ``(lo, hi)`` corners of every element, each ``[E, d]``."""
        n = self.base[None, :] * (2.0 ** self.levels)[:, None]
        width = self.domain[:, 1] - self.domain[:, 0]
        lo = self.domain[:, 0] + width * self.index / n
        hi = self.domain[:, 0] + width * (self.index + 1) / n
        return lo, hi

    def _vertex_lattice(self) -> tuple[np.ndarray, np.ndarray]:
        """Integer lattice coordinates of all element corners ``[E, 2^d, d]`` at the finest level, and corner order."""
        offs = corner_offsets(self.dim)
        scale = (2 ** (self.max_level - self.levels))[:, None, None]
        return (self.index[:, None, :] + offs[None]) * scale, offs

    def _keys(self, lattice: np.ndarray) -> np.ndarray:
        """Encode integer lattice coordinates ``[..., d]`` (finest level) into one int64 key."""
        n = self._lattice_n(self.max_level) + 1
        if float(np.prod(n.astype(np.float64))) >= 2.0**62:
            raise InvalidInputError("mesh too deep to index its vertices with 64-bit keys")
        mult = np.cumprod(np.concatenate([[1], n[:-1]])).astype(np.int64)
        return (lattice * mult).sum(-1)

    def _topology(self) -> tuple[np.ndarray, np.ndarray]:
        if "topo" not in self._cache:
            lat, _ = self._vertex_lattice()
            keys = self._keys(lat)
            uniq, inverse = np.unique(keys.ravel(), return_inverse=True)
            first = np.zeros(len(uniq), np.int64)
            first[inverse] = np.arange(inverse.size)
            vlat = lat.reshape(-1, self.dim)[first]
            self._cache["topo"] = (vlat, inverse.reshape(keys.shape))
        return self._cache["topo"]

    @property
    def cells(self) -> np.ndarray:
        """Vertex ids of each element's corners ``[E, 2^d]`` (VTK corner order)."""
        return self._topology()[1]

    @property
    def num_vertices(self) -> int:
        """Number of unique vertices (the DOFs, hanging nodes included)."""
        return int(self._topology()[0].shape[0])

    @property
    def dofs(self) -> int:
        """Unique vertices, hanging nodes included (MFEM: ``FiniteElementSpace::GetNDofs`` of an order-1 H1
        space on the same non-conforming mesh, which counts slave DOFs too); see :attr:`true_dofs`."""
        return self.num_vertices

    @property
    def vertices(self) -> np.ndarray:
        """Physical vertex coordinates ``[V, d]``."""
        vlat, _ = self._topology()
        n = self._lattice_n(self.max_level)
        return self.domain[:, 0] + (self.domain[:, 1] - self.domain[:, 0]) * vlat / n

    # ---------------------------------------------------------- point location
    def locate(self, points: np.ndarray) -> np.ndarray:
        """Element id containing each physical point ``[N, d]`` (points on shared faces go to the upper cell)."""
        pts = np.asarray(points, dtype=np.float64)
        u = (pts - self.domain[:, 0]) / (self.domain[:, 1] - self.domain[:, 0])
        if np.any(u < -1e-12) or np.any(u > 1 + 1e-12):
            raise InvalidInputError("points outside the mesh domain")
        return self._locate_unit(np.clip(u, 0.0, 1.0))

    def _locate_unit(self, u: np.ndarray) -> np.ndarray:
        order, ekeys = self._element_keys()
        out = np.full(len(u), -1, np.int64)
        for lvl in np.unique(self.levels):
            n = self._lattice_n(int(lvl))
            cell = np.minimum((u * n).astype(np.int64), n - 1)
            key = self._element_key(np.full(len(u), lvl), cell)
            pos = np.clip(np.searchsorted(ekeys, key), 0, len(ekeys) - 1)
            hit = ekeys[pos] == key
            out[hit] = order[pos[hit]]
        if np.any(out < 0):
            raise InvalidInputError("mesh does not cover the domain (corrupted element list)")
        return out

    def _element_key(self, levels: np.ndarray, index: np.ndarray) -> np.ndarray:
        n = self._lattice_n(self.max_level)
        if float(np.prod(n.astype(np.float64))) * (MAX_LEVEL + 1) >= 2.0**62:
            raise InvalidInputError("mesh too deep to index its elements with 64-bit keys")
        mult = np.cumprod(np.concatenate([[1], n[:-1]])).astype(np.int64)
        return (index * mult).sum(-1) * (MAX_LEVEL + 1) + levels

    def _element_keys(self) -> tuple[np.ndarray, np.ndarray]:
        if "ekeys" not in self._cache:
            keys = self._element_key(self.levels, self.index)
            order = np.argsort(keys)
            self._cache["ekeys"] = (order, keys[order])
        return self._cache["ekeys"]

    # ------------------------------------------------------------ hanging nodes
    def hanging_mask(self) -> np.ndarray:
        """Bool ``[V]``: vertices that lie inside a face or edge of a neighbouring element (hanging nodes)."""
        vlat, _ = self._topology()
        n = self._lattice_n(self.max_level)
        hanging = np.zeros(len(vlat), bool)
        for signs in product((-1, 1), repeat=self.dim):
            probe = 2 * vlat + np.array(signs)  # half a finest cell away, on the doubled lattice
            inside = np.all((probe > 0) & (probe < 2 * n), axis=1)
            if not inside.any():
                continue
            elem = self._locate_unit(probe[inside] / (2.0 * n))
            size = 2 ** (self.max_level - self.levels[elem])
            is_corner = np.all(vlat[inside] % size[:, None] == 0, axis=1)
            hanging[np.flatnonzero(inside)[~is_corner]] = True
        return hanging

    @property
    def num_hanging(self) -> int:
        return int(self.hanging_mask().sum())

    @property
    def true_dofs(self) -> int:
        """Conforming (true) DOFs: vertices that are not hanging (MFEM: ``GetTrueVSize`` of an order-1 H1 space)."""
        return self.num_vertices - self.num_hanging

    def hanging_constraints(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """How the conforming interpolant constrains hanging nodes.

        Returns ``(hanging [H], corners [H, 2^d], weights [H, 2^d])``: hanging vertex ``hanging[k]`` takes the value
        ``sum_j weights[k, j] * value[corners[k, j]]``, the multilinear interpolant of the coarsest element whose
        face or edge it lies on (as MFEM's conforming prolongation does). Corners may hang themselves: apply
        repeatedly (:meth:`conforming_values`).
        """
        if "constraints" in self._cache:
            return self._cache["constraints"]
        vlat, _ = self._topology()
        n = self._lattice_n(self.max_level)
        nv = len(vlat)
        best_lvl = np.full(nv, np.iinfo(np.int64).max)
        best_el = np.full(nv, -1, np.int64)
        for signs in product((-1, 1), repeat=self.dim):
            probe = 2 * vlat + np.array(signs)
            inside = np.all((probe > 0) & (probe < 2 * n), axis=1)
            if not inside.any():
                continue
            idx = np.flatnonzero(inside)
            elem = self._locate_unit(probe[inside] / (2.0 * n))
            size = 2 ** (self.max_level - self.levels[elem])
            not_corner = ~np.all(vlat[idx] % size[:, None] == 0, axis=1)
            better = not_corner & (self.levels[elem] < best_lvl[idx])
            best_lvl[idx[better]] = self.levels[elem[better]]
            best_el[idx[better]] = elem[better]
        hanging = np.flatnonzero(best_el >= 0)
        el = best_el[hanging]
        size = (2 ** (self.max_level - self.levels[el]))[:, None]
        t = (vlat[hanging] - self.index[el] * size) / size  # local coordinates in [0, 1]^d
        offs = corner_offsets(self.dim)
        w = np.prod(np.where(offs[None] == 1, t[:, None, :], 1.0 - t[:, None, :]), axis=-1)
        out = (hanging, self.cells[el], w)
        self._cache["constraints"] = out
        self._cache["constraint_elements"] = el
        return out

    def constraining_elements(self, elements: np.ndarray) -> np.ndarray:
        """The coarser elements that constrain a hanging corner of any of ``elements`` (their refinement frees it)."""
        hanging, _, _ = self.hanging_constraints()
        el = self._cache["constraint_elements"]
        if len(hanging) == 0 or len(elements) == 0:
            return np.zeros(0, np.int64)
        owner = np.full(self.num_vertices, -1, np.int64)
        owner[hanging] = el
        cons = owner[self.cells[np.asarray(elements)].ravel()]
        return np.unique(cons[cons >= 0])

    def conforming_values(self, values: np.ndarray) -> np.ndarray:
        """Vertex values with every hanging node replaced by its constrained value (a continuous interpolant)."""
        vals = np.array(values, dtype=np.float64, copy=True)
        squeeze = vals.ndim == 1
        vals = vals.reshape(len(vals), -1)
        hanging, corners, w = self.hanging_constraints()
        if len(hanging) == 0:
            return vals[:, 0] if squeeze else vals
        for _ in range(self.max_level + 2):  # constraint chains are at most max_level long
            new = np.einsum("hk,hkc->hc", w, vals[corners])
            done = np.allclose(new, vals[hanging], rtol=0.0, atol=0.0)
            vals[hanging] = new
            if done:
                break
        return vals[:, 0] if squeeze else vals

    # ----------------------------------------------------------- interpolation
    def local_coords(self, points: np.ndarray, elem: np.ndarray) -> np.ndarray:
        """Coordinates of ``points`` in [0, 1]^d inside their elements ``elem``."""
        lo, hi = self.element_bounds()
        return np.clip((points - lo[elem]) / (hi[elem] - lo[elem]), 0.0, 1.0)

    def interpolate(self, values: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Multilinear interpolation of vertex ``values`` (``[V]`` or ``[V, C]``) at physical ``points``."""
        vals = np.asarray(values, dtype=np.float64)
        squeeze = vals.ndim == 1
        vals = vals.reshape(len(vals), -1)
        pts = np.asarray(points, dtype=np.float64)
        elem = self.locate(pts)
        t = self.local_coords(pts, elem)
        offs = corner_offsets(self.dim)
        w = np.prod(np.where(offs[None] == 1, t[:, None, :], 1.0 - t[:, None, :]), axis=-1)  # [N, 2^d]
        out = np.einsum("nk,nkc->nc", w, vals[self.cells[elem]])
        return out[:, 0] if squeeze else out

    def sample_elements(self, n: int, rng: np.random.Generator, elements: np.ndarray | None = None) -> np.ndarray:
        """``n`` uniform random points in each element: ``[E, n, d]``."""
        lo, hi = self.element_bounds()
        if elements is not None:
            lo, hi = lo[elements], hi[elements]
        u = rng.random((len(lo), n, self.dim))
        return lo[:, None, :] + u * (hi - lo)[:, None, :]

    def sample_domain(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniform random points in the domain box."""
        return self.domain[:, 0] + rng.random((n, self.dim)) * (self.domain[:, 1] - self.domain[:, 0])

    def summary(self) -> dict:
        return {"dim": self.dim, "elements": self.num_elements, "dofs": self.dofs,
                "hanging": self.num_hanging, "true_dofs": self.true_dofs, "max_level": self.max_level,
                "min_level": int(self.levels.min()) if self.num_elements else 0}
