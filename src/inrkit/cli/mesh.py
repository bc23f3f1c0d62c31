"""``inrkit mesh``: an adaptive (PruningAMR) or uniform VTU/PVD mesh of an INR, for ParaView."""
from __future__ import annotations

import argparse
import sys

from inrkit.cli.common import add_device_flag, add_json_flag, emit


def _mesh(args: argparse.Namespace) -> None:
    from inrkit.amr import PruningAMRConfig, mesh_model

    base = None if args.base.strip().lower() == "auto" else args.base
    cfg = PruningAMRConfig(eps=args.eps, T=args.T, P=args.P, error=args.error,
                           id_activations=args.id_activations, n_id=args.n_id, n_err=args.n_err,
                           init_level=args.init_level, max_iters=args.max_iters, max_dofs=args.max_dofs,
                           base=base, max_level=args.max_level, max_elements=args.max_elements, seed=args.seed,
                           progress=True)
    cfg.validate()
    report = mesh_model(args.model, args.output, domain=args.domain, config=cfg, uniform=args.uniform,
                        preview=args.preview, device=args.device, hanging=args.hanging)
    if report["domain_source"] not in ("model", "--domain"):
        print(f"inrkit mesh: domain {report['domain_source']}", file=sys.stderr)
    for w in report.get("warnings", []):
        print(f"inrkit mesh: warning: {w}", file=sys.stderr)
    if report.get("ms_per_element") is not None:
        print(f"inrkit mesh: {sum(h['evaluated'] for h in report['history'])} element tests, "
              f"{report['ms_per_element']:.2f} ms/element, {report['amr_seconds']:.2f} s meshing", file=sys.stderr)
    if not args.json:
        report.pop("history", None)
        report.pop("config", None)
        report["warnings"] = "; ".join(report["warnings"]) or "none"
    emit(report, args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mesh``."""
    p = subparsers.add_parser("mesh", help="adaptive mesh of an INR (PruningAMR) as VTU/PVD for ParaView")
    p.add_argument("model", help="model file (.safetensors or .npz); 2D, 3D or 4D (space + time) input")
    p.add_argument("-o", "--output", required=True, help="output .vtu (2D/3D) or .pvd (4D: 3D slices in time)")
    p.add_argument("--domain", default=None,
                   help="box as min,max per axis, e.g. --domain=-1,1,-1,1 (default: the model's own domain; "
                        "[-1,1]^d, reported as assumed, for an .npz)")
    p.add_argument("--P", type=float, default=0.2, help="refine if the proportion of neurons kept exceeds P (0.2)")
    p.add_argument("--T", type=float, default=1e-3, help="refine if the pruned network's element error exceeds T")
    p.add_argument("--eps", type=float, default=1e-3, help="relative tolerance of the ID (1e-3)")
    p.add_argument("--error", choices=("reference", "relative"), default="reference",
                   help="element error: reference = mean_i mean|f-g| / |f(x_i)+5| (the authors' code, for outputs "
                        "of order 1), relative = mean|f-g| / range of f over the domain (any output scale)")
    p.add_argument("--id-activations", choices=("pruned", "original"), default="pruned",
                   help="each layer's ID on the activations of the network whose earlier layers are already pruned "
                        "(pruned, default) or on the original network's activations (original, as the reference "
                        "code); on the benchmark's networks the DOF counts differ by at most 1.1%% of "
                        "uniform's (docs/amr.md)")
    p.add_argument("--init-level", type=int, default=2, help="uniform refinements of the base mesh first (2)")
    p.add_argument("--max-iters", type=int, default=4,
                   help="most refinement rounds, the --init-level uniform ones included (4)")
    p.add_argument("--max-dofs", type=int, default=5000, help="stop refining once the mesh has this many DOFs (5000)")
    p.add_argument("--n-id", type=int, default=256, help="points per element for the ID (256)")
    p.add_argument("--n-err", type=int, default=128, help="points per element for the error check (128)")
    p.add_argument("--base", default="auto",
                   help="level-0 cells per axis: one integer or one per axis (e.g. 2,2,10); auto: near-cubic cells, "
                        "about 256 elements after --init-level refinements")
    p.add_argument("--hanging", choices=("conforming", "inr"), default="conforming",
                   help="values at hanging nodes: conforming = constrained to the coarse edge/face (continuous, as "
                        "MFEM), inr = the INR's own value")
    p.add_argument("--max-level", type=int, default=12, help="never refine beyond this level (12)")
    p.add_argument("--max-elements", type=int, default=500_000, help="stop before exceeding this many elements")
    p.add_argument("--uniform", type=int, default=None, metavar="LEVEL",
                   help="instead of PruningAMR, refine uniformly to LEVEL (base * 2^LEVEL cells per axis)")
    p.add_argument("--preview", default=None, metavar="PNG", help="also write a PNG of the mesh and the field")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample points (0)")
    add_device_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_mesh)
