"""README's "Results at a glance" table and docs/results.md, generated from the JSON files under ``bench/results/``.

One row per capability: the headline number read from its JSON (the field named in the row), the paper's
number or the target the benchmark judges against, the JSON it comes from, the machine and the date it was
measured, and the page that explains it.

  python bench/results_table.py          print the table
  python bench/results_table.py --write  rewrite README.md between the markers below, and docs/results.md

The date is the JSON's own measurement date where it records one (``environment.date``); otherwise the date of
the last commit that changed the JSON (marked "commit"), leaving out commits whose subject starts with
``results text:`` (wording edits of a JSON that change no measurement). ``tests/test_results_table.py`` fails
when README.md's section differs from this output, so rerunning a benchmark means rerunning ``--write``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
PAGE = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
TEXT_ONLY = "results text:"  # commit subjects that edit a JSON's wording only: not a measurement date


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / name).read_text())
    return data


def _span(values: list[float], fmt: str = "{:.1f}") -> str:
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def _pct(x: float) -> str:
    return f"{x:+.1f} %"


def commit_date(name: str) -> str | None:
    """Date (YYYY-MM-DD) of the last commit that changed ``bench/results/NAME``, text-only edits left out."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--invert-grep", f"--grep=^{TEXT_ONLY}", "--",
             f"bench/results/{name}"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _date(name: str, recorded: str | None = None) -> str:
    if recorded:
        return recorded[:10]
    found = commit_date(name)
    return f"{found} (commit)" if found else "not committed"


# ------------------------------------------------------------ one function per row: (measured, paper/target, date)
Row = tuple[str, str, str]


def realdata() -> Row:
    d = _load("realdata.json")
    t = d["targets"]
    parts = []
    for kind, label, target in (("photo", "photos", t["photo_psnr"]), ("volume", "volumes", t["volume_psnr"])):
        rows = [r for r in d["rows"] if r["kind"] == kind]
        if not rows:
            continue
        largest = max((list(r["shape"]) for r in rows), key=lambda s: (len(s), s))
        shape = "x".join(str(n) for n in (largest[::-1] if len(largest) == 2 else largest))  # images: W x H
        parts.append(f"{len(rows)} {label} (up to {shape}): {_span([r['psnr'] for r in rows])} dB in "
                     f"{_span([r['wall_seconds'] for r in rows], '{:.0f}')} s, files "
                     f"{_span([r['ratio'] for r in rows], '{:.2f}')} of the raw bytes")
    met = sum(all(r["meets"].values()) for r in d["rows"])
    measured = "; ".join(parts) + f" (`rows[].psnr`, `wall_seconds`, `ratio`); {met} of {len(d['rows'])} meet"
    measured += " every target"
    target = (f">= {t['photo_psnr']:g} dB (photos), >= {t['volume_psnr']:g} dB (volumes), <= {t['seconds']:g} s, "
              f"smaller than the data")
    return measured, target, _date("realdata.json", d.get("environment", {}).get("date"))


def fit_speed() -> Row:
    d = _load("fit_speed.json")
    r = d["siren_256x3"]["ratios"]
    peer = r["inrkit"]["best_peer"]
    default = "bf16 on this CPU" if d.get("bf16_native") else "fp32 on this CPU"
    measured = (f"SIREN 256x3 on a 128x128 crop, same settings as the peers: inrkit's default ({default}) "
                f"{r['inrkit'][f'steps_per_second_vs_{peer}']:.2f}x {peer}'s steps/s, "
                f"{r['inrkit']['steps_per_second_vs_textbook']:.2f}x a textbook loop; fp32 through the compiled step "
                f"{r['inrkit-fp32-compiled']['steps_per_second_vs_textbook']:.2f}x the textbook loop "
                f"(`siren_256x3.ratios`)")
    return measured, "project target: 2x the best peer's steps/s at equal PSNR", _date("fit_speed.json")


def many() -> Row:
    d = _load("many.json")
    t = d["throughput"]
    arms = t["arms"]
    rate = {k: v["signals_per_cpu_minute"] for k, v in arms.items()}
    measured = (f"{t['crops']} Kodak crops {t['size']}x{t['size']}, SIREN {t['hidden']}, {t['steps']} steps, "
                f"one thread (`throughput.arms.*.signals_per_cpu_minute`): `fit-many` {rate['fit_many_auto']:.0f} "
                f"signals per CPU-minute; one at a time {rate['one_by_one_eager']:.0f} eager, "
                f"{rate['one_by_one_compiled']:.0f} compiled; stacked {rate['batched']:.0f}")
    return measured, ">= 120 signals per CPU-minute (2x one at a time before the compiled step)", \
        _date("many.json", (d.get("environment") or {}).get("date"))


def omp() -> Row:
    d = _load("omp_2threads.json")
    speed = ", ".join(f"{r['torch_cpu_float64_speedup_vs_sklearn']:.1f}x (k1={r['k1']})" for r in d["results"])
    same = min(r["torch_cpu_float64_same_support_fraction"] for r in d["results"])
    measured = (f"batched OMP vs scikit-learn, {d['results'][0]['vectors']} vectors, float64, both on {d['threads']} "
                f"threads (`results[].torch_cpu_float64_speedup_vs_sklearn`): {speed}; same supports: "
                f"{100 * same:.0f} %")
    return measured, ">= 10x", _date("omp_2threads.json")


def amr() -> Row:
    d = _load("amr.json")
    names = {"2d-relu": "2D ReLU", "3d-hydrogen": "3D hydrogen", "3d-flow": "3D flow",
             "4d-sphere": "4D moving sphere (time slices)", "4d-vortex": "4D vortex (time slices)"}
    parts = []
    default_id = d.get("defaults", {}).get("id_activations", "pruned")  # what the measured defaults used
    for key, label in names.items():
        spread = d["cases"].get(key, {}).get("seed_spread")
        if not spread:
            continue
        field = "slices_dof_reduction" if key.startswith("4d") else f"dof_reduction_id_{default_id}"
        s = spread[field]
        parts.append(f"{label} {100 * s['mean']:.1f} ± {100 * s['std']:.1f} %")
    siren = d["cases"].get("2d-siren")
    tail = ""
    if siren:
        reduction = round(100 * siren["comparison"]["rmse_inr"]["dof_reduction_vs_uniform"], 1) + 0.0  # no "-0"
        tail = f"; 2D SIREN {reduction:.1f} % (seed 0, `cases.2d-siren.comparison`)"
    measured = (f"fewer DOFs than uniform refinement at equal RMSE, defaults (ID on {default_id} activations), "
                "mean ± std over 3 training seeds "
                "(`cases.*.seed_spread`): " + "; ".join(parts) + tail)
    return measured, "up to 87 % fewer DOFs (PruningAMR paper, 4D CT)", _date("amr.json")


def aire() -> Row:
    d = _load("aire.json")
    s = d["summary"]
    m = s["table4_mean_psnr"]
    n = len(d["images"])
    measured = (f"Densify+Prune vs Small at equal size and steps, mean of {n} images at "
                f"{d['settings']['size']}x{d['settings']['size']} (`summary.table4_mean_psnr`): "
                f"{m['densify_prune']:.2f} vs {m['small']:.2f} dB ({s['table4_gain_over_small_db']:+.2f} dB), "
                f"ahead on {s['table4_densify_prune_beats_small']} images")
    return measured, "39.47 vs 36.44 dB (AIRe Table 4, full-size Kodak)", _date("aire.json")


def sinr() -> Row:
    d = _load("compress_rd.json")
    s = d["summary"]
    claim = s["sinr_vs_coin"]["paper_claim_percent"]
    measured = (f"storage saving at equal PSNR (`summary.*.mean_saving_percent`): "
                f"{_pct(s['sinr_vs_coin']['mean_saving_percent'])} vs COIN, "
                f"{_pct(s['sinr_vs_quant']['mean_saving_percent'])} vs quant; with coefficient fine-tuning "
                f"{_pct(s['sinr-ft_vs_coin']['mean_saving_percent'])} / "
                f"{_pct(s['sinr-ft_vs_quant']['mean_saving_percent'])}")
    return measured, f"{claim[0]:g}-{claim[1]:g} % saving (SINR abstract)", _date("compress_rd.json")


def meta() -> Row:
    d = _load("meta.json")
    s = d["summary"]
    measured = (f"{s['held_out_volumes']} held-out {d['config']['kind']} volumes reach the scratch fit's final "
                f"PSNR in {s['meta_speedup_steps_mean']:.1f}x fewer steps, {s['meta_speedup_time_mean']:.1f}x less "
                f"time (`summary.meta_speedup_steps_mean`, `_time_mean`)")
    return measured, f"up to {s['paper_speedup']:g}x faster encoding (Meta-INR abstract)", _date("meta.json")


def grid_rd() -> Row:
    d = _load("grid_rd.json")
    lo, hi = d["bpp_window"]
    parts = []
    for key, cmp in d["sets"].items():
        c = cmp["comparison"]
        codecs = ", ".join(f"{name} {_pct(c[codec]['bd_rate_percent_window'])}" for codec, name in
                           (("jpeg", "JPEG"), ("webp", "WebP"), ("jpeg2000", "JPEG 2000"), ("avif", "AVIF"))
                           if codec in c)
        parts.append(f"{key} ({len(cmp['images'])} images): {codecs}")
    measured = (f"BD-rate of the latent image codec over {lo:.1f}-{hi:.1f} bpp "
                "(`sets.*.comparison.*.bd_rate_percent_window`, negative = fewer bytes): " + "; ".join(parts))
    return measured, "negative BD-rate against JPEG 2000 on Kodak/2, beats WebP on other images", \
        _date("grid_rd.json", (d.get("environment") or {}).get("date"))


def grid_full_size() -> Row:
    d = _load("grid_full_size.json")
    parts = []
    for r in d["images"]:
        for p in r["grid"]:
            diffs = ", ".join(f"{name} {p[f'psnr_vs_{key}_at_same_bpp']:+.2f} dB" for key, name in
                              (("jpeg2000", "JPEG 2000"), ("avif", "AVIF"), ("coolchic", "Cool-chic 5"))
                              if p.get(f"psnr_vs_{key}_at_same_bpp") is not None)
            parts.append(f"{r['image']} {p['bpp']:.3f} bpp {p['psnr']:.2f} dB ({diffs}; encode "
                         f"{p['encode_cpu_seconds_per_mp']:,.0f} CPU s/MP)")
    speed = _load("grid_decode_speed.json")
    rates = [r["decode_cpu_seconds_per_mp"] for r in speed["rows"]]
    measured = ("full-size Kodak, default preset, one thread (`images[].grid[].psnr_vs_*_at_same_bpp`): "
                + "; ".join(parts) + f". Decode (`grid_decode_speed.json`, `rows[].decode_cpu_seconds_per_mp`): "
                f"{min(rates):.2f}-{max(rates):.2f} CPU s/MP" + _encode_speed())
    return measured, "BD-rate <= 0 against AVIF; decode <= 0.5 and encode <= 300 CPU s per megapixel", \
        _date("grid_full_size.json", (d.get("environment") or {}).get("date"))


def _encode_speed() -> str:
    """Encode CPU s/MP of the default (compiled) encoder from ``grid_encode_speed.json``, if there."""
    if not (RESULTS / "grid_encode_speed.json").exists():
        return ""
    rows = [r for r in _load("grid_encode_speed.json")["rows"] if r["compiled"]]
    half = [r["encode_cpu_seconds_per_mp"] for r in rows if r["image"].endswith("/2")]
    full = [r["encode_cpu_seconds_per_mp"] for r in rows if not r["image"].endswith("/2")]
    text = (". Encode, alone (`grid_encode_speed.json`, `rows[].encode_cpu_seconds_per_mp`, compiled): "
            f"{_span(half, '{:,.0f}')} CPU s/MP at half size")
    return text + (f", {_span(full, '{:,.0f}')} at full size" if full else "")


def nerf_lego() -> Row:
    d = _load("nerf_lego.json")
    r = d["results"]
    grid, mlp = r["grid_100px"], r["mlp_100px"]
    first = next((sec for _, sec, db in grid["curve"] if db >= 25.0), None)
    reached = f", 25 dB on the curve's views after {first:.0f} s" if first is not None else ""
    measured = (f"lego_100, defaults, one thread, mean over the 10 test views (`results.*.psnr`): grid field "
                f"{grid['psnr']:.1f} dB after {grid['train_seconds']:.0f} s of training{reached}; NeRF MLP "
                f"{mlp['psnr']:.1f} dB after {mlp['train_seconds']:.0f} s")
    if "grid_200px" in r:
        g2 = r["grid_200px"]
        measured += f"; lego_200 grid {g2['psnr']:.1f} dB after {g2['train_seconds']:.0f} s"
    if not all(v.get("ran_alone") for v in r.values()):
        measured += " (beside other jobs: seconds are upper bounds)"
    return measured, ">= 25 dB within 15 min on one CPU thread; 32.5 dB NeRF, 36 dB instant-NGP at 800 px on a GPU", \
        _date("nerf_lego.json")


def nerf_prune() -> Row:
    d = _load("nerf_prune_lego.json")
    a, s = d["summary"]["arms"], d["summary"]
    study = d["comparison"]["study"]
    core, full = a["coreset@32"], a["full_retrained"]
    ratio = s["time_ratio_vs_full"]["pruned 32"]
    measured = (f"MLP NeRF on lego_100 (width 64 -> 32, 800 + 200 steps, {len(d['seeds'])} seeds; `summary.arms`): "
                f"coreset {core['psnr']['mean']:.2f} ± {core['psnr']['std']:.2f} dB vs the full model trained as long "
                f"{full['psnr']['mean']:.2f} ± {full['psnr']['std']:.2f} dB; {ratio['mean']:.2f}x the time per step, "
                f"{core['params'] / a['full']['params']:.2f} of the parameters")
    target = (f"{study['psnr_full']} -> {study['psnr_coreset']} dB, {study['time_ratio']:.2f}x the time per step "
              f"(Ding et al. 2025, 100k iterations)")
    return measured, target, _date("nerf_prune_lego.json")


def crafted_limits() -> Row:
    d = _load("crafted_limits.json")
    runs = d["runs"]
    label = "after" if "after" in runs else sorted(runs)[-1]
    run = runs[label]
    results = run["results"]
    within = sum(bool(r.get("within_target")) for r in results)
    outcomes = Counter(r.get("outcome") for r in results)
    detail = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items(), key=lambda kv: (-kv[1], str(kv[0]))))
    measured = f"`{label}` run: {within} of {len(results)} crafted inputs within the target (`within_target`; {detail})"
    outside = Counter(r.get("outcome") for r in results if not r.get("within_target"))
    if outside:
        measured += "; outside it: " + ", ".join(f"{n} {o}" for o, n in sorted(outside.items(), key=str))
        measured += " (an accepted run does its work, e.g. `fit --resume`)" if set(outside) == {"accepted"} else ""
    if label != "after":
        measured += "; only this run is recorded, the tree with the bounds is not measured in this file yet"
    else:
        for other, orun in sorted(runs.items()):
            if other != label:
                n_in = sum(bool(r.get("within_target")) for r in orun["results"])
                measured += f"; `{other}`: {n_in} of {len(orun['results'])}"
    target = "every input decoded or refused within 2 s of CPU and 512 MB beyond a tiny valid run"
    return measured, target, _date("crafted_limits.json", run.get("environment", {}).get("date"))


ROWS: list[tuple[str, str, Callable[[], Row]]] = [
    ("`inrkit fit` with defaults on real photos and volumes", "realdata.json", realdata),
    ("fitting speed (SIREN)", "fit_speed.json", fit_speed),
    ("many small signals (`fit-many`)", "many.json", many),
    ("latent image codec vs JPEG, WebP, JPEG 2000, AVIF", "grid_rd.json", grid_rd),
    ("latent image codec at full size vs AVIF and Cool-chic", "grid_full_size.json", grid_full_size),
    ("SINR compression", "compress_rd.json", sinr),
    ("sparse coding (OMP) for SINR", "omp_2threads.json", omp),
    ("AIRe", "aire.json", aire),
    ("Meta-INR", "meta.json", meta),
    ("PruningAMR", "amr.json", amr),
    ("NeRF on the Blender lego scene", "nerf_lego.json", nerf_lego),
    ("NeRF neuron pruning", "nerf_prune_lego.json", nerf_prune),
    ("hostile files (crafted limits)", "crafted_limits.json", crafted_limits),
]
# the page that explains each JSON's benchmark (docs/results.md links it)
PAGES = {"realdata.json": "getting-started.md", "fit_speed.json": "speed.md", "grid_rd.json": "compress.md",
         "grid_full_size.json": "compress.md",
         "compress_rd.json": "compress.md", "omp_2threads.json": "compress.md", "aire.json": "adapt.md",
         "meta.json": "meta.md", "amr.json": "amr.md", "nerf_prune.json": "nerf.md", "nerf_prune_lego.json": "nerf.md",
         "nerf_lego.json": "nerf.md",
         "many.json": "many.md", "crafted_limits.json": "limits.md"}
PAGE_HEAD = """# Results

Every number on this page is read from a JSON file under `bench/results/` by `bench/results_table.py`, which also
writes README's "Results at a glance"; `tests/test_results_table.py` fails when either differs from the JSON files,
so a rerun benchmark means rerunning `.venv/bin/python bench/results_table.py --write`. Each row names the field
it reads, the machine the JSON records and the date of measurement (the JSON's own date, or the date of the last
commit that changed it, marked "commit"). How each benchmark is run, what it compares and why is on the page in
the last column; `docs/protocols.md` gives the paper protocols next to the CPU ones.

"""


def machine(name: str) -> str:
    """What the JSON says about the machine it was measured on (CPU count, architecture, device, torch)."""
    d = _load(name)
    env = {**(d.get("environment") or {}), **(d.get("machine") if isinstance(d.get("machine"), dict) else {})}
    parts = []
    cpus = env.get("cpus") or env.get("cpu_count") or env.get("cores")
    if cpus:
        parts.append(f"{cpus} CPUs")
    for key in ("cpu", "machine", "device"):
        if isinstance(env.get(key), str) and env[key]:
            parts.append(env[key])
    torch_version = env.get("torch") or d.get("torch")
    if isinstance(torch_version, str):
        parts.append(f"torch {torch_version}")
    threads = env.get("threads") or d.get("threads")
    if threads:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return ", ".join(dict.fromkeys(parts)) or "not recorded"


def page() -> str:
    """docs/results.md: the table with the machine and the explaining page of every row."""
    lines = [PAGE_HEAD.rstrip("\n") + "\n",
             "| capability | measured here | paper / target | from | machine | measured on | explained in |",
             "|---|---|---|---|---|---|---|"]
    for what, name, row in ROWS:
        measured, target, date = row()
        doc = PAGES.get(name)
        link = f"[{doc}]({doc})" if doc else ""
        lines.append(f"| {what} | {measured} | {target} | `bench/results/{name}` | {machine(name)} | {date} | {link} |")
    return "\n".join(lines) + "\n"


def table() -> str:
    """The generated section (without the markers)."""
    lines = ["| capability | measured here | paper / target | from | measured on |", "|---|---|---|---|---|"]
    for what, name, row in ROWS:
        measured, target, date = row()
        lines.append(f"| {what} | {measured} | {target} | `bench/results/{name}` | {date} |")
    return "\n".join(lines) + "\n"


def section(text: str) -> str:
    """README's current generated section (between the markers)."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def write(path: Path = README) -> bool:
    """Rewrite the section of ``path``; True if it changed."""
    text = path.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + table() + text[end:]
    if new == text:
        return False
    path.write_text(new)
    return True


def write_page(path: Path = PAGE) -> bool:
    """Rewrite docs/results.md; True if it changed."""
    new = page()
    if path.exists() and path.read_text() == new:
        return False
    path.write_text(new)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true",
                   help=f"rewrite README.md between {BEGIN} and {END}, and docs/results.md")
    args = p.parse_args(argv)
    if args.write:
        print("README.md updated" if write() else "README.md already up to date")
        print("docs/results.md updated" if write_page() else "docs/results.md already up to date")
    else:
        sys.stdout.write(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
