"""Real data at real size, with defaults: `inrkit fit INPUT -o OUT` on full-size photos and real volumes.

Each input is fitted by the command a user types, with every setting at its default (one thread), in its
own process; the record holds the command's wall and CPU seconds, the fit's PSNR, the model's bytes
against the raw data's bytes (8-bit pixels, the volume's own sample type) and what ``--arch auto`` chose.
The targets: every photo >= 30 dB and every volume >= 40 dB within 90 s, each model smaller than its data.

Inputs: two full-size Kodak photos (kodim08, kodim21) and two photos that scikit-image bundles (``coffee``,
``rocket``), none of them used to choose the auto rule (the photos behind it were kodim05 and kodim13,
docs/choosing.md); ``hydrogen.vti`` (64^3 float32) and ``ironProt.vtk`` (68^3 uint8) from ../shared/data,
which WERE among the inputs the rule was chosen on; and a 128^3 float32 Gray-Scott volume that
``inrkit synth grayscott`` simulates, which was not. It also times ``inrkit --help``.

    python bench/realdata.py                 # about 10 minutes on one thread
    python bench/realdata.py --only kodim08  # one input
Writes bench/results/realdata.json; ``--markdown`` prints the table of docs/getting-started.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "realdata.json"
PHOTO_DB, VOLUME_DB, SECONDS = 30.0, 40.0, 90.0


def environment() -> dict[str, Any]:
    """Machine, software and date of the run (:func:`inrkit.utils.run_environment`, one thread)."""
    from inrkit.utils import run_environment

    return run_environment(threads=1)


def _inrkit(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``inrkit ARGS`` in a child; returns the process, wall seconds and the child's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "inrkit", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def prepare(folder: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """The inputs, written into ``folder``: ``[{name, kind, path}]``."""
    from PIL import Image
    from skimage import data

    cases: list[dict[str, Any]] = []
    for name in ("kodim08", "kodim21"):
        src = SHARED / "kodak" / f"{name}.png"
        if src.exists():
            shutil.copy(src, folder / src.name)
            cases.append({"name": name, "kind": "photo", "path": folder / src.name,
                          "source": "Kodak (full size, 768x512)"})
    for name in ("coffee", "rocket"):
        path = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(path)
        cases.append({"name": name, "kind": "photo", "path": path, "source": f"scikit-image data.{name}()"})
    for name in ("hydrogen.vti", "ironProt.vtk"):
        src = SHARED / "volumes" / name
        if src.exists():
            shutil.copy(src, folder / name)
            cases.append({"name": name.split(".")[0], "kind": "volume", "path": folder / name,
                          "source": "VTK example data (a tuning input of the auto rule)"})
    series = folder / "grayscott128"
    proc, _, _ = _inrkit(["synth", "grayscott", "--size", "128", "--steps", "1", "-o", str(series), "--json"], env)
    if proc.returncode == 0:
        cases.append({"name": "grayscott128", "kind": "volume", "path": series / "grayscott_0000.npy",
                      "source": "inrkit synth grayscott --size 128 --steps 1 (float32)"})
    return cases


def run_case(case: dict[str, Any], folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """``inrkit fit INPUT -o OUT --json`` with defaults; the record of one row."""
    out = folder / f"{case['name']}.safetensors"
    proc, wall, cpu = _inrkit(["fit", str(case["path"]), "-o", str(out), "--json", "--no-progress"], env)
    row: dict[str, Any] = {"name": case["name"], "kind": case["kind"], "source": case["source"],
                           "command": f"inrkit fit {Path(case['path']).name} -o {out.name}",
                           "exit": proc.returncode, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}
    if proc.returncode != 0:
        row["error"] = proc.stderr.strip()[-500:]
        return row
    summary = json.loads(proc.stdout)
    target = PHOTO_DB if case["kind"] == "photo" else VOLUME_DB
    row.update({k: summary.get(k) for k in ("psnr", "bytes", "raw_bytes", "ratio", "arch", "steps", "seconds",
                                            "params", "weight_dtype")})
    row["shape"] = json.loads(subprocess.run([sys.executable, "-m", "inrkit", "info", str(out), "--json"],
                                             capture_output=True, text=True, env=env).stdout)["signal"].get("shape")
    row["auto"] = summary.get("auto")
    row["warnings"] = [line for line in proc.stderr.splitlines() if "warning" in line]
    row["meets"] = {"psnr": summary["psnr"] >= target, "seconds": wall <= SECONDS,
                    "smaller_than_data": summary.get("ratio") is not None and summary["ratio"] < 1}
    return row


def help_seconds(env: dict[str, str], repeats: int = 3) -> dict[str, float]:
    """CPU and wall seconds of ``inrkit --help`` (best of ``repeats``)."""
    runs = [_inrkit(["--help"], env) for _ in range(repeats)]
    return {"cpu_seconds": round(min(r[2] for r in runs), 3), "wall_seconds": round(min(r[1] for r in runs), 3)}


def markdown(results: dict[str, Any]) -> str:
    """The table of docs/getting-started.md."""
    lines = ["| input | kind | shape | model | PSNR (dB) | seconds | model bytes | raw bytes | ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        if row["exit"] != 0:
            lines.append(f"| {row['name']} | {row['kind']} | - | failed (exit {row['exit']}) | | | | | |")
            continue
        shape = "x".join(str(s) for s in row["shape"] or [])
        model = row["arch"] + (f" (finest {row['auto']['finest']})" if row.get("auto", {}).get("finest") else "")
        lines.append(f"| {row['name']} | {row['kind']} | {shape} | {model} | {row['psnr']:.2f} | "
                     f"{row['wall_seconds']:.0f} | {row['bytes']:,} | {row['raw_bytes']:,} | {row['ratio']:.3f} |")
    return "\n".join(lines)


GETTING_STARTED = ROOT / "docs" / "getting-started.md"
BEGIN, END = "<!-- realdata:begin -->", "<!-- realdata:end -->"


def with_table(doc: str, results: dict[str, Any]) -> str:
    """``doc`` with the generated table (and its provenance line) between the realdata markers."""
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    env, help_ = results["environment"], results["help"]
    note = (f"Measured {env['date'][:10]} ({env['machine']}, {env['threads']} thread, torch {env['torch']}), "
            f"`bench/results/realdata.json`. `inrkit --help`: {help_['cpu_seconds']:.2f} s of CPU.")
    return f"{head}{BEGIN}\n{markdown(results)}\n\n{note}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="names of the inputs to run (default: all)")
    parser.add_argument("--markdown", action="store_true", help="print the table of the committed results")
    parser.add_argument("--docs", action="store_true", help="write the table into docs/getting-started.md")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.markdown or args.docs:
        results = json.loads(args.output.read_text())
        if args.docs:
            GETTING_STARTED.write_text(with_table(GETTING_STARTED.read_text(), results))
        print(markdown(results))
        return
    env = {**os.environ, "INRKIT_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="inrkit-realdata-") as tmp:
        folder = Path(tmp)
        cases = [c for c in prepare(folder, env) if not args.only or c["name"] in args.only]
        rows = []
        for case in cases:
            rows.append(run_case(case, folder, env))
            print(json.dumps({k: rows[-1].get(k) for k in ("name", "psnr", "wall_seconds", "ratio", "exit")}),
                  flush=True)
    results = {"name": "realdata", "description": __doc__.split("\n")[0], "environment": environment(),
               "targets": {"photo_psnr": PHOTO_DB, "volume_psnr": VOLUME_DB, "seconds": SECONDS,
                           "ratio_below": 1.0, "ratio_aim": 0.25},
               "help": help_seconds(env), "rows": rows}
    if args.only and args.output.exists():  # keep the other rows of a full run
        old = json.loads(args.output.read_text())
        kept = [r for r in old.get("rows", []) if r["name"] not in {r["name"] for r in rows}]
        results["rows"] = kept + rows
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
