"""PruningAMR: adaptive 2^d-tree meshes that show an INR in ParaView without its training data."""

from inrkit.amr.api import mesh_field, mesh_model
from inrkit.amr.baselines import (
    dofs_at_rmse,
    element_interp_error,
    error_amr,
    mesh_rmse,
    uniform_comparison,
    uniform_mesh,
    vertex_values,
)
from inrkit.amr.export import preview_png, slice_4d, write_mesh, write_pvd, write_vtu
from inrkit.amr.field import InrField, load_field
from inrkit.amr.flows import FLOWS, bent_vortex_tube
from inrkit.amr.mesh import BoxMesh, corner_offsets, parse_domain
from inrkit.amr.mesher import MeshConfig, build_mesh
from inrkit.amr.pruning import (
    ERROR_MODES,
    AMRResult,
    PruningAMRConfig,
    auto_base,
    batched_id,
    element_error,
    element_pruning_stats,
    mark,
    mesh_pruning_stats,
    output_range,
    pruning_amr,
    resolve_base,
    scipy_id,
)

__all__ = [
    "AMRResult", "auto_base", "batched_id", "bent_vortex_tube", "BoxMesh", "corner_offsets", "dofs_at_rmse",
    "element_error", "element_interp_error", "element_pruning_stats", "error_amr", "ERROR_MODES", "FLOWS", "InrField",
    "MeshConfig", "build_mesh", "load_field", "mark", "mesh_field", "mesh_model", "mesh_pruning_stats", "mesh_rmse",
    "output_range",
    "parse_domain", "preview_png", "pruning_amr", "PruningAMRConfig", "resolve_base", "scipy_id", "slice_4d",
    "uniform_comparison", "uniform_mesh", "vertex_values", "write_mesh", "write_pvd", "write_vtu",
]
