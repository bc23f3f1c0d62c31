"""``inrkit mesh``: an adaptive (PruningAMR) or uniform VTU/PVD mesh of an INR, for ParaView."""
from __future__ import annotations

import argparse

from .common import add_device_flag, add_json_flag, emit


def _mesh(args: argparse.Namespace) -> None:
    from ..amr import PruningAMRConfig, mesh_model

    cfg = PruningAMRConfig(eps=args.eps, T=args.T, P=args.P, n_id=args.n_id, n_err=args.n_err,
                           max_iters=args.max_iters, base=args.base, max_level=args.max_level,
                           max_elements=args.max_elements, seed=args.seed, progress=True)
    cfg.validate()
    report = mesh_model(args.model, args.output, domain=args.domain, config=cfg, uniform=args.uniform,
                        preview=args.preview, device=args.device)
    if not args.json:
        report.pop("history", None)
        report.pop("config", None)
    emit(report, args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mesh``."""
    p = subparsers.add_parser("mesh", help="adaptive mesh of an INR (PruningAMR) as VTU/PVD for ParaView")
    p.add_argument("model", help="model file (.safetensors or .npz); 2D, 3D or 4D (space + time) input")
    p.add_argument("-o", "--output", required=True, help="output .vtu (2D/3D) or .pvd (4D: 3D slices in time)")
    p.add_argument("--domain", default=None,
                   help="box as min,max per axis, e.g. --domain=-1,1,-1,1 (default: the model's own domain)")
    p.add_argument("--P", type=float, default=0.2, help="refine if the proportion of neurons kept exceeds P (0.2)")
    p.add_argument("--T", type=float, default=1e-3, help="refine if the pruned network's relative error exceeds T")
    p.add_argument("--eps", type=float, default=1e-3, help="relative tolerance of the ID (1e-3)")
    p.add_argument("--max-iters", type=int, default=8, help="K_max, the most refinement iterations (8)")
    p.add_argument("--n-id", type=int, default=256, help="points per element for the ID (256)")
    p.add_argument("--n-err", type=int, default=128, help="points per element for the error check (128)")
    p.add_argument("--base", type=int, default=4, help="cells per axis of the starting mesh (4)")
    p.add_argument("--max-level", type=int, default=12, help="never refine beyond this level (12)")
    p.add_argument("--max-elements", type=int, default=500_000, help="stop before exceeding this many elements")
    p.add_argument("--uniform", type=int, default=None, metavar="LEVEL",
                   help="instead of PruningAMR, refine uniformly to LEVEL (base * 2^LEVEL cells per axis)")
    p.add_argument("--preview", default=None, metavar="PNG", help="also write a PNG of the mesh and the field")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample points (0)")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_mesh)
