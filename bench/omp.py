"""Batched torch OMP against scikit-learn's ``orthogonal_mp`` on thousands of weight-sized vectors.

Checks agreement (same supports, max coefficient difference) and reports the speed-up,
for SINR's dictionary shapes (k2 = 8 k1, s = 0.4 k1). scikit-learn is run with its
default (Cholesky OMP per vector) and with ``precompute=True`` (Gram OMP).

    .venv/bin/python bench/omp.py            # CPU, 1 thread, median of 3 timings, a few minutes
    .venv/bin/python bench/omp.py --full     # more vectors, all threads, and the GPU when present
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import orthogonal_mp
from threadpoolctl import threadpool_limits

from inrkit.compress.decode.dictionary import sensing_matrix
from inrkit.compress.encode.omp import _make_screen, omp, to_dense
from inrkit.utils import run_environment, write_json

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls (robust to a busy shared machine) and the last output."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def run_case(k1: int, n: int, devices: list[str], repeats: int) -> dict:
    k2, s = 8 * k1, int(0.4 * k1)
    a = sensing_matrix(k1, k2, 0)
    y = np.random.default_rng(k1).standard_normal((n, k1))
    t_sk, ref = timed(lambda: orthogonal_mp(a, y.T, n_nonzero_coefs=s).T, repeats)
    t_skg, _ = timed(lambda: orthogonal_mp(a, y.T, n_nonzero_coefs=s, precompute=True).T, repeats)
    row = {"k1": k1, "k2": k2, "s": s, "vectors": n, "repeats": repeats, "sklearn_s": t_sk, "sklearn_gram_s": t_skg}
    for dev in devices:  # the low-precision type that screens float64 correlations there (None: no screening)
        screen = _make_screen(torch.from_numpy(np.array(a)).to(dev))
        row[f"torch_{dev.split(':')[0]}_float64_screen"] = None if screen is None else str(screen.matrix.dtype)
    for dev in devices:
        for name, dt in (("float64", torch.float64), ("float32", torch.float32)):
            omp(a, y[:8], s, device=dev, dtype=dt)  # warm-up
            t, (idx, coef) = timed(lambda: omp(a, y, s, device=dev, dtype=dt), repeats)
            dense = to_dense(idx, coef, k2).double().cpu().numpy()
            key = f"torch_{dev.split(':')[0]}_{name}"
            row[f"{key}_s"] = t
            row[f"{key}_speedup_vs_sklearn"] = t_sk / t
            row[f"{key}_speedup_vs_sklearn_gram"] = t_skg / t
            row[f"{key}_same_support_fraction"] = float(np.mean(np.all((dense != 0) == (ref != 0), axis=1)))
            row[f"{key}_max_coef_diff"] = float(np.abs(dense - ref).max())
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"k1={r['k1']}\nn={r['vectors']}" for r in rows]
    keys = ["sklearn_s", "sklearn_gram_s"] + sorted(k for k in rows[0] if k.startswith("torch_") and k.endswith("_s"))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        ax.bar(np.arange(len(rows)) + j * width, [r[key] for r in rows], width, label=key[:-2])
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, labels)
    ax.set_ylabel("seconds (lower is better)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("OMP, s = 0.4 k1, k2 = 8 k1")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="GPU scale: more vectors, all threads, CUDA if present")
    parser.add_argument("--out", default=str(RESULTS / "omp.json"))
    parser.add_argument("--repeats", type=int, default=3, help="timings per case; the median is reported")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both torch and scikit-learn's BLAS (default 1; all with --full)")
    args = parser.parse_args()
    threads = args.threads or (torch.get_num_threads() if args.full else 1)
    cases = [(64, 16384), (128, 8192), (256, 4096)] if args.full else [(32, 4096), (64, 4096), (128, 4096)]
    devices = ["cpu"] + (["cuda"] if args.full and torch.cuda.is_available() else [])
    torch.set_num_threads(threads)
    rows = []
    with threadpool_limits(threads):
        for k1, n in cases:
            rows.append(run_case(k1, n, devices, repeats=max(1, args.repeats)))
            print({k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    result = {"benchmark": "omp", "threads": threads, "timing": f"median of {max(1, args.repeats)} runs",
              "devices": devices, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
              "claim": "batched torch OMP >= 10x faster than sklearn orthogonal_mp on thousands of vectors",
              "results": rows, "environment": run_environment(threads=threads)}
    write_json(args.out, result)
    plot(rows, Path(args.out).with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
