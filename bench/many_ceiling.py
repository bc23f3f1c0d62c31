"""How fast can one batched SIREN step be on this CPU? The ceiling behind the 5x target of docs/many.md.

Times a hand-written training step of a stack of ``B`` SIRENs 2->32x3->3 on 64x64 crops (4096 points each):
forward, MSE gradient and backward with batched matmuls (``torch.baddbmm``/``bmm``), no autograd, no optimiser,
no data loading. Eager and ``torch.compile``d, for stacks of 1, 8 and 32 members and 1 and 2 threads; plus the
cost of ``torch.sin``/``torch.cos`` alone. Whatever ``inrkit.train.fit_many`` does on top (Adam, loss
bookkeeping, loading, saving) comes on top of these numbers, so 200 steps at the best ms per member-step bounds
the signals per minute any batched path can reach here.

    .venv/bin/python bench/many_ceiling.py      # about 2 minutes; run it alone (it reports timings)

Writes bench/results/many_ceiling.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from inrkit.utils import run_environment

RESULTS = Path(__file__).resolve().parent / "results"
DIMS = [2, 32, 32, 32, 3]
POINTS = 64 * 64


def make_stack(members: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(members, DIMS[i + 1], DIMS[i], generator=g) * 0.1 for i in range(len(DIMS) - 1)]
    biases = [torch.randn(members, 1, DIMS[i + 1], generator=g) * 0.1 for i in range(len(DIMS) - 1)]
    x = torch.rand(POINTS, 2, generator=g).expand(members, POINTS, 2).contiguous()
    y = torch.rand(members, POINTS, 3, generator=g)
    return weights, biases, x, y


def step(weights: list[torch.Tensor], biases: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    """Gradients of the summed per-member MSE of a stack of sine MLPs (omega folded into the weights)."""
    hs, zs, h = [x], [], x
    for w, b in zip(weights[:-1], biases[:-1]):
        z = torch.baddbmm(b, h, w.transpose(1, 2))
        zs.append(z)
        h = torch.sin(z)
        hs.append(h)
    out = torch.baddbmm(biases[-1], h, weights[-1].transpose(1, 2))
    g = (out - y) * (2.0 / y.shape[1])
    grads = []
    for i in range(len(weights) - 1, -1, -1):
        grads.append((torch.bmm(g.transpose(1, 2), hs[i]), g.sum(1, keepdim=True)))
        if i:
            g = torch.bmm(g, weights[i]) * torch.cos(zs[i - 1])
    return grads


def per_member_ms(fn, args: tuple, members: int, reps: int) -> float:
    for _ in range(3):
        fn(*args)
    t = time.perf_counter()
    for _ in range(reps):
        fn(*args)
    return 1e3 * (time.perf_counter() - t) / reps / members


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stacks", default="1,8,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=str(RESULTS / "many_ceiling.json"))
    a = ap.parse_args()
    compiled = torch.compile(step)
    rows = []
    for threads in (int(v) for v in a.threads.split(",")):
        torch.set_num_threads(threads)
        z = torch.randn(POINTS * 32)
        sin_ns = 1e9 * per_member_ms(torch.sin, (z,), 1, 200) / 1e3 / z.numel()
        cos_ns = 1e9 * per_member_ms(torch.cos, (z,), 1, 200) / 1e3 / z.numel()
        for members in (int(v) for v in a.stacks.split(",")):
            args = make_stack(members)
            row = {"threads": threads, "members": members,
                   "eager_ms_per_member_step": per_member_ms(step, args, members, a.reps),
                   "compiled_ms_per_member_step": per_member_ms(compiled, args, members, a.reps),
                   "sin_ns_per_element": sin_ns, "cos_ns_per_element": cos_ns}
            rows.append(row)
            print(row)
    best = min(r["compiled_ms_per_member_step"] for r in rows)
    result = {"benchmark": "many_ceiling", "environment": run_environment(), "network": DIMS, "points": POINTS,
              "rows": rows,
              "best_ms_per_member_step": best,
              "ceiling_signals_per_minute_200_steps": 60e3 / (200 * best),
              "note": "forward + backward only (no optimiser, loss bookkeeping or I/O): an upper bound on any "
                      "batched path's throughput at 200 steps per signal"}
    from inrkit.utils import write_json

    write_json(Path(a.out), result)
    print(f"best {best:.3f} ms per member-step -> at most {result['ceiling_signals_per_minute_200_steps']:.0f} "
          f"signals/min at 200 steps")


if __name__ == "__main__":
    main()
