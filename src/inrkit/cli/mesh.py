"""``inrkit mesh``: an adaptive (PruningAMR or error-driven) or uniform VTU/PVD mesh of an INR, for ParaView.

Flags come from :class:`inrkit.amr.PruningAMRConfig` and :class:`inrkit.amr.MeshConfig` (see
:func:`inrkit.cli.common.add_config`): defaults and help live there. ``--uniform LEVEL`` and
``--error-driven DOFS`` are short for ``--method uniform --size LEVEL`` and ``--method error-driven --size DOFS``.
"""
from __future__ import annotations

import argparse
import sys

from inrkit.amr.api import mesh_model
from inrkit.amr.mesh import MAX_LEVEL
from inrkit.amr.mesher import FOUR_D_MODES, HANGING, MESH_METHODS, MeshConfig
from inrkit.amr.pruning import ERROR_MODES, ID_ACTIVATIONS, PruningAMRConfig
from inrkit.cli.common import (
    add_config,
    add_device_flag,
    add_json_flag,
    add_output,
    build_config,
    declare_output,
    emit,
)
from inrkit.cli.many import add_many, check_single, emit_many
from inrkit.errors import InvalidInputError
from inrkit.jobs import ManyOptions, mesh_many, wants_many

# the library's id_method/chunk_values are tuning knobs; progress is on unless --json
CONFIG_SKIP = ("id_method", "chunk_values", "progress")
SHORTHANDS = {"uniform": "--uniform", "error_driven": "--error-driven"}  # --method NAME --size N in one flag


def _mesh_config(args: argparse.Namespace, cfg: PruningAMRConfig) -> MeshConfig:
    """The MeshConfig of the flags, ``--uniform``/``--error-driven`` expanded; checked against ``cfg``."""
    given = [(name, flag) for name, flag in SHORTHANDS.items() if getattr(args, name) is not None]
    overrides = {}
    if given:
        if len(given) > 1 or args.method != "pruning-amr" or args.size is not None:
            flags = [flag for _, flag in given] + (["--method/--size"] if args.method != "pruning-amr"
                                                   or args.size is not None else [])
            raise InvalidInputError(f"{' and '.join(flags)} choose two different meshes: pass one of them")
        name, _ = given[0]
        overrides = {"method": name.replace("_", "-"), "size": getattr(args, name)}
    return build_config(MeshConfig, args, **overrides).validate(cfg)


def _mesh(args: argparse.Namespace) -> int:
    cfg = build_config(PruningAMRConfig, args, progress=not args.json)  # validated here, before any work
    meshing = _mesh_config(args, cfg)  # the method and outputs are checked before any model is read
    if wants_many(args.model, build_config(ManyOptions, args)):  # a folder of models: one mesh each
        summary = mesh_many([args.model], args.output, config=cfg, mesh=meshing, redo=args.redo, device=args.device,
                            progress=not args.json)
        return emit_many(summary, args.json)
    check_single(args, (".vtu", ".pvd"))
    report = mesh_model(args.model, args.output, config=cfg, mesh=meshing, device=args.device)
    if report["domain_source"] not in ("model", "--domain"):
        print(f"inrkit mesh: domain {report['domain_source']}", file=sys.stderr)
    for w in report.get("warnings", []):
        print(f"inrkit mesh: warning: {w}", file=sys.stderr)
    if report.get("ms_per_element") is not None:
        print(f"inrkit mesh: {sum(h['evaluated'] for h in report['history'])} element tests, "
              f"{report['ms_per_element']:.2f} ms/element, {report['amr_seconds']:.2f} s meshing", file=sys.stderr)
    cmp = report.get("uniform_comparison")
    if cmp is not None and cmp["dof_change"] is not None:
        change = cmp["dof_change"]
        how = ("as many DOFs as uniform" if abs(change) < 0.005 else
               f"{abs(change):.0%} {'fewer' if change < 0 else 'more'} DOFs")
        around = ", ".join(f"level {v['level']}: {v['dofs']} DOFs at {v['rmse']:.3g}" for v in cmp["levels"][-2:])
        print(f"inrkit mesh: uniform refinement needs ~{cmp['uniform_dofs_at_equal_rmse']:.0f} DOFs for RMSE "
              f"{report['rmse']:.3g} ({around}; log-log between them): this mesh has {how}", file=sys.stderr)
    if not args.json:
        report.pop("history", None)
        if cmp is not None:  # the plain listing shows the headline number
            report["dof_change_vs_uniform"] = report.pop("uniform_comparison")["dof_change"]
        report.pop("config", None)
        report.pop("slices", None)
        report["warnings"] = "; ".join(report["warnings"]) or "none"
    return emit(report, args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mesh``."""
    p = subparsers.add_parser("mesh", help="adaptive mesh of an INR (PruningAMR) as VTU/PVD for ParaView")
    p.add_argument("model", help="model file (.safetensors or .npz); 2D, 3D or 4D (space + time) input "
                   "(with --many: a folder or a quoted glob of models)")
    add_output(p, "output .vtu (2D/3D) or .pvd (4D: 3D slices in time) (with --many: a folder, NAME.vtu or "
               "NAME.pvd per model)", (".vtu", ".pvd"))
    add_many(p, "model")
    add_config(p, MeshConfig, only=["method", "size", "domain"], choices={"method": MESH_METHODS},
               ranges={"size": (0, None)})
    p.add_argument("--uniform", type=int, default=None, metavar="LEVEL",
                   help="short for --method uniform --size LEVEL (default: off)")
    p.add_argument("--error-driven", type=int, default=None, metavar="DOFS",
                   help="short for --method error-driven --size DOFS (default: off)")
    add_config(p, PruningAMRConfig, skip=CONFIG_SKIP, choices={"error": ERROR_MODES, "id_activations": ID_ACTIVATIONS},
               ranges={"eps": (0, 1), "P": (0, 1), "n_id": (1, None), "n_err": (1, None), "max_dofs": (1, None),
                       "max_elements": (1, None), "max_level": (0, MAX_LEVEL)})
    add_config(p, MeshConfig, only=["four_d", "times", "hanging", "compare_uniform", "preview"],
               choices={"four_d": FOUR_D_MODES, "hanging": HANGING})
    declare_output(p, "preview", "--preview", (".png",))
    for flag, metavar in (("--size", "N"), ("--preview", "PNG"), ("--domain", "BOX")):
        p._option_string_actions[flag].metavar = metavar
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_mesh)
