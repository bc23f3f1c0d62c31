"""Bytes of `.inrz` v1 (JSON header, Brotli) vs v2 (binary header, per-section entropy coding), same weights.

Fits a small SIREN on a few Kodak crops (one thread), compresses each with every codec setting in both
container versions, checks that both decode to the same float32 weights (bit-exact), and reports total,
header (container overhead: everything but the sections) and payload bytes, plus the coding method of
every v2 section. Results: ``bench/results/inrz_v2.json``.

    OMP_NUM_THREADS=1 python bench/inrz_v2.py            # 3 crops of 96x96, 300 steps: about a minute
"""
from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np
import torch

from inrkit.compress.decode.container import unpack, writing_version
from inrkit.compress.decode.decoder import decode
from inrkit.compress.decode.entropy import section_method
from inrkit.compress.encode.encoder import compress_model
from inrkit.models import siren
from inrkit.signals import ImageSignal
from inrkit.train import FitConfig, fit

SETTINGS = [("quant", {"bits": 6}), ("quant", {"bits": 8}), ("coin", {}),
            ("sinr", {"sparsity": 0.3, "bits": 6}), ("sinr", {"sparsity": 0.4, "bits": 8})]


def split_bytes(data: bytes) -> tuple[int, int]:
    """(header = everything but the sections, payload = the sections) of an `.inrz` file."""
    _, sections = unpack(data)
    payload = sum(len(s) for s in sections)
    return len(data) - payload, payload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", default="../shared/data/kodak")
    ap.add_argument("--images", default="kodim01,kodim05,kodim23")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--out", default="bench/results/inrz_v2.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.images.split(","):
        c = args.crop
        signal = ImageSignal.from_file(Path(args.kodak) / f"{name}.png", crop=(128, 128 + c, 128, 128 + c))
        model = siren(2, 3, [args.hidden] * 3, generator=torch.Generator().manual_seed(0))
        fit(model, signal, FitConfig(steps=args.steps, lr=1e-3, progress=False, precision="fp32", device="cpu"))
        meta = signal.metadata()
        for codec, opts in SETTINGS:
            files = {}
            for version in (1, 2):
                with writing_version(version):
                    t = time.perf_counter()
                    files[version] = compress_model(model, codec, signal=meta, **opts)
                    enc = time.perf_counter() - t
                t = time.perf_counter()
                net = decode(files[version])
                dec = time.perf_counter() - t
                files[version, "net"] = net
                files[version, "t"] = (enc, dec)
            a, b = files[1, "net"], files[2, "net"]
            same = all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))
            assert same, (name, codec, opts)
            (h1, p1), (h2, p2) = split_bytes(files[1]), split_bytes(files[2])
            methods = collections.Counter(section_method(s) for s in unpack(files[2])[1]
                                          if codec != "coin")
            rows.append({"image": name, "codec": codec, **opts, "params": model.num_params(),
                         "v1": {"total": len(files[1]), "header": h1, "payload": p1},
                         "v2": {"total": len(files[2]), "header": h2, "payload": p2},
                         "bit_exact": same, "v2_methods": dict(methods),
                         "seconds": {"v1": files[1, "t"], "v2": files[2, "t"]}})
            r = rows[-1]
            print(f"{name} {codec} {opts}: v1 {len(files[1])} ({h1}+{p1}) -> v2 {len(files[2])} ({h2}+{p2}) "
                  f"{dict(methods)} enc {files[2, 't'][0]:.3f}s dec {files[2, 't'][1]:.3f}s")
    summary = collections.defaultdict(lambda: np.zeros(6))
    for r in rows:
        key = f"{r['codec']} " + " ".join(f"{k}={r[k]}" for k in ("sparsity", "bits") if k in r)
        summary[key] += [r["v1"]["total"], r["v1"]["header"], r["v1"]["payload"],
                         r["v2"]["total"], r["v2"]["header"], r["v2"]["payload"]]
    table = {k: {"v1_total": v[0] / 3, "v1_header": v[1] / 3, "v1_payload": v[2] / 3, "v2_total": v[3] / 3,
                 "v2_header": v[4] / 3, "v2_payload": v[5] / 3, "total_saving": 1 - v[3] / v[0],
                 "payload_saving": 1 - v[5] / v[2]} for k, v in summary.items()}
    for k, v in table.items():
        print(f"{k:24s} total {v['v1_total']:.0f} -> {v['v2_total']:.0f} ({100 * v['total_saving']:.1f}%), header "
              f"{v['v1_header']:.0f} -> {v['v2_header']:.0f}, payload {v['v1_payload']:.0f} -> {v['v2_payload']:.0f} "
              f"({100 * v['payload_saving']:.1f}%)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"settings": vars(args), "rows": rows, "mean_per_setting": table},
                                         indent=1))


if __name__ == "__main__":
    main()
