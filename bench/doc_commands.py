"""Every shell command of README.md and docs/*.md, run on this CPU with one thread and timed.

Extraction: every fenced block tagged ``bash``/``sh`` (all its commands) and every untagged block
(its lines that start with ``inrkit``); continuation lines (``\\``) are joined and ``# comments``
dropped. Synopses (placeholders such as ``MODEL`` or ``[--flag ...]`` alternatives) are listed but
not run. Each document runs, in order, in its own scratch folder (``--scratch``, default under
/tmp) holding the inputs the docs name: links to ../shared/data files (kodim23.png, kodim05.png,
hydrogen.vti, bunny.ply, kodak/, ../shared/data itself) and two placeholders: ``photo.png`` and
``image.png`` (a 256x256 crop of kodim05), ``weights.npz`` (a small SIREN as an ``.npz`` weight
list), ``my_schedule.toml`` (the schedule printed in docs/adapt.md). Documents that use a model
they never make get it from a short ``PREREQS`` step (untimed, recorded).

Every ``inrkit CMD`` gets ``--threads 1`` and the environment ``OMP_NUM_THREADS=1``. The result is
one JSON (bench/results/doc_commands.json): per command the document, line, text as written, the
command run, seconds, exit code, and the 1-minute load average before and after (the machine is
shared: times are upper bounds measured under load). ``--only`` reruns some documents and merges
into the existing JSON. tests/test_doc_commands.py checks the JSON against the docs: every fenced
``inrkit`` command listed, and every one that took >= 60 s (or was not run for its length) labelled
with its time on its line in the docs.

    OMP_NUM_THREADS=1 .venv/bin/python bench/doc_commands.py --list          # what would run
    OMP_NUM_THREADS=1 .venv/bin/python bench/doc_commands.py                 # all (about 40 min here)
    OMP_NUM_THREADS=1 .venv/bin/python bench/doc_commands.py --only docs/frames.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
RESULTS = ROOT / "bench" / "results" / "doc_commands.json"
SHELL_LANGS = {"bash", "sh", "shell", "console"}
LONG_S = 60.0  # a command at least this long must carry a time label in the docs
# a time label in a command's comment: "6 min", "~5 s", "(40 s", "1.5 h", "about 12 min" ...
TIME_LABEL = re.compile(r"\d+(\.\d+)?\s*(s|sec|min|h)\b")
OPTIONAL = re.compile(r"\s*\[--?[^\]]*\]")  # "[--flag ...]" in a synopsis or an example
LEAF = re.compile(r"\binrkit ((?:synth )?[a-z][a-z-]*)")  # the leaf command that takes --threads
PLACEHOLDER = re.compile(r"\b(MODEL|INPUTS|OUTDIR|OUT|INPUT|DIR|ADDR|N)\b(\.|\s|$)")

# Commands not run, by their text as written (startswith match): (reason, whether the docs must label
# it with a time: a command not run for its length must say how long it takes).
NOT_RUN: dict[str, tuple[str, bool]] = {
    "python3 -m venv .venv && .venv/bin/pip install -q torch": (
        "installs packages and runs the whole test suite (network; the suite is run by the lead, not here)",
        False),
    "inrkit nerf-train scene -o nerf.safetensors --iters 20000": (
        "the paper-size model, meant for a GPU; its CPU time is estimated in docs/nerf.md from the measured "
        "CPU recipe (per-iteration cost x batch x samples x width^2)", True),
}
# Commands run as another command line, by their text as written (startswith match).
RUN_AS: dict[str, str] = {
    "python3 -m venv .venv && .venv/bin/pip install torch": "inrkit demo",  # the install needs a network
}
# Per document: untimed steps that make what the document uses but never makes (recorded in the JSON).
PREREQS: dict[str, list[str]] = {
    "docs/adapt.md": ["inrkit fit image.png -o m.safetensors --hidden 128x3 --steps 300"],
    "docs/compress.md": ["inrkit fit image.png -o model.safetensors --hidden 64x3 --steps 300"],
    "docs/amr.md": [],
}


@dataclass
class DocCommand:
    """One shell command of a document."""

    file: str
    line: int
    text: str  # as written, continuation lines joined, comment dropped
    comment: str = ""
    synopsis: bool = False


@dataclass
class Entry:
    """One recorded run."""

    file: str
    line: int
    command: str
    run: str = ""
    status: str = "ok"  # ok | failed | timeout | not run | synopsis | prereq
    seconds: float | None = None
    exit_code: int | None = None
    load_before: float | None = None
    load_after: float | None = None
    needs_label: bool = False  # the docs must say how long it takes (>= LONG_S, timed out, or not run for it)
    note: str = ""
    tail: str = field(default="", repr=False)


def _split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)``: the first `` #`` outside quotes starts the comment."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def extract(root: Path = ROOT, docs: list[str] | None = None) -> list[DocCommand]:
    """Every shell command of the fenced blocks of ``docs`` (README.md and docs/*.md by default)."""
    out: list[DocCommand] = []
    for name in docs or DOCS:
        lines = (root / name).read_text(encoding="utf-8").split("\n")
        lang: str | None = None
        pending: DocCommand | None = None
        for no, raw in enumerate(lines, 1):
            stripped = raw.strip()
            if stripped.startswith("```"):
                lang = None if lang is not None else stripped[3:].strip().lower()
                pending = None
                continue
            if lang is None or (lang and lang not in SHELL_LANGS):
                continue
            code, comment = _split_comment(stripped)
            if pending is not None:  # a continuation line
                pending.text += " " + code.rstrip("\\").strip()
                pending.comment = " ".join(c for c in (pending.comment, comment) if c)
                if not code.endswith("\\"):
                    pending = None
                continue
            if code.startswith("[") and out and out[-1].file == name and out[-1].line >= no - 3:
                out[-1].text += " " + code  # a synopsis continued on an indented line
                continue
            if not code or (not lang and not code.startswith("inrkit ")):
                continue
            cmd = DocCommand(name, no, code.rstrip("\\").strip(), comment)
            out.append(cmd)
            if code.endswith("\\"):
                pending = cmd
    for cmd in out:
        body = re.sub(OPTIONAL, "", cmd.text)
        cmd.synopsis = bool(PLACEHOLDER.search(body)) or "|" in body.replace("||", "")
    return out


def runnable(cmd: DocCommand) -> str:
    """The command line to run: ``[...]`` optional flags dropped, ``--threads 1`` added to inrkit."""
    for prefix, other in RUN_AS.items():
        if cmd.text.startswith(prefix):
            return re.sub(LEAF, r"inrkit \1 --threads 1", other)
    text = re.sub(OPTIONAL, "", cmd.text)
    if "--threads" in text:
        return text
    return re.sub(LEAF, r"inrkit \1 --threads 1", text)


def _setup(folder: Path, data: Path) -> None:
    """The inputs the docs name, in ``folder`` (see the module docstring)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    shared = folder.parent / "shared"
    if not shared.exists():
        shared.mkdir()
        (shared / "data").symlink_to(data)
    links = {"kodim23.png": data / "kodak/kodim23.png", "kodim05.png": data / "kodak/kodim05.png",
             "hydrogen.vti": data / "volumes/hydrogen.vti", "bunny.ply": data / "meshes/bunny.ply",
             "kodak": data / "kodak"}
    for name, target in links.items():
        if not (folder / name).exists():
            (folder / name).symlink_to(target)
    crop = np.asarray(Image.open(data / "kodak/kodim05.png").convert("RGB"))[128:384, 256:512]
    for name in ("photo.png", "image.png"):
        Image.fromarray(crop).save(folder / name)
    rng = np.random.default_rng(0)
    widths = [2, 32, 32, 1]
    arrays: dict[str, np.ndarray] = {"activations": np.array(["sine", "sine", "identity"]),
                                     "omega0": np.array(30.0, np.float32)}
    for i in range(3):
        bound = (1 / widths[i]) if i == 0 else np.sqrt(6 / widths[i]) / 30
        arrays[f"W{i}"] = rng.uniform(-bound, bound, (widths[i + 1], widths[i])).astype(np.float32)
        arrays[f"b{i}"] = np.zeros(widths[i + 1], np.float32)
    with open(folder / "weights.npz", "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    adapt = (ROOT / "docs/adapt.md").read_text(encoding="utf-8")
    toml = re.search(r"```toml\n(.*?)```", adapt, re.S)
    if toml:
        (folder / "my_schedule.toml").write_text(toml.group(1), encoding="utf-8")


def _run(shell: str, cwd: Path, timeout: float, env: dict[str, str]) -> tuple[int | None, float, str]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(["bash", "-c", shell], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
        code: int | None = proc.returncode
        tail = (proc.stdout + proc.stderr)[-600:]
    except subprocess.TimeoutExpired as exc:
        code = None
        tail = str(exc)[-600:]
    return code, time.perf_counter() - start, tail


def run_doc(name: str, cmds: list[DocCommand], scratch: Path, data: Path, timeout: float,
            keep: dict[str, dict] | None = None, partial: Path | None = None) -> list[Entry]:
    """Run one document's commands in order in its own scratch folder; those in ``keep`` (recorded
    runs by command text) are not run again and keep their entry."""
    folder = scratch / name.replace("/", "_").removesuffix(".md")
    _setup(folder, data)
    env = dict(os.environ, OMP_NUM_THREADS="1", INRKIT_THREADS="1", MKL_NUM_THREADS="1",
               PATH=f"{ROOT / '.venv/bin'}:{os.environ.get('PATH', '')}")
    entries: list[Entry] = []
    keep = keep or {}
    for pre in PREREQS.get(name, []):
        shell = runnable(DocCommand(name, 0, pre))
        code, secs, tail = _run(shell, folder, timeout, env)
        entries.append(Entry(name, 0, pre, shell, "prereq", round(secs, 1), code, note="untimed setup", tail=tail))
    for cmd in cmds:
        if cmd.text in keep:
            entries.append(Entry(**{**keep[cmd.text], "line": cmd.line}))
            continue
        entry = Entry(cmd.file, cmd.line, cmd.text)
        reason, long = next((r for p, r in NOT_RUN.items() if cmd.text.startswith(p)), (None, False))
        if cmd.synopsis:
            entry.status, entry.note = "synopsis", "a synopsis with placeholders; its concrete forms are timed"
        elif reason:
            entry.status, entry.note, entry.needs_label = "not run", reason, long
        else:
            entry.run = runnable(cmd)
            entry.load_before = round(os.getloadavg()[0], 2)
            code, secs, tail = _run(entry.run, folder, timeout, env)
            entry.load_after = round(os.getloadavg()[0], 2)
            entry.seconds, entry.exit_code, entry.tail = round(secs, 1), code, tail
            entry.status = "timeout" if code is None else ("ok" if code == 0 else "failed")
            entry.needs_label = code is None or secs >= LONG_S
        entries.append(entry)
        if partial is not None:  # one JSON line per run, so an interrupted run keeps what it measured
            with open(partial, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(entry)) + "\n")
        print(f"{entry.status:8s} {entry.seconds if entry.seconds is not None else '-':>7} s  "
              f"load {entry.load_before}  {name}:{cmd.line}  {cmd.text}", flush=True)
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="documents to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the extracted commands and exit")
    parser.add_argument("--missing", action="store_true",
                        help="run only the commands without a successful recorded run (new, edited, failed); "
                             "the scratch folder keeps the earlier runs' outputs")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/inrkit-doc-commands"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    parser.add_argument("--select", default=None,
                        help="run only the commands matching this regular expression (the others keep their "
                             "recorded entries); the scratch folder keeps the earlier runs' outputs")
    parser.add_argument("--pending", default=None, metavar="NOTE",
                        help="record the commands without an entry as 'pending' with this note (not timed yet)")
    parser.add_argument("--merge", nargs="*", type=Path, default=[],
                        help="other result files whose entries replace this one's (by document and command)")
    args = parser.parse_args(argv)
    commands = extract()
    if args.list:
        for cmd in commands:
            tag = "synopsis " if cmd.synopsis else ""
            print(f"{cmd.file}:{cmd.line}: {tag}{runnable(cmd)}")
        return 0
    docs = DOCS if args.only is None else args.only  # "--only" alone: merge only
    old: list[dict] = []
    recorded: list[dict] = []
    if args.output.exists():
        recorded = json.loads(args.output.read_text())["results"]
        old = [e for e in recorded if e["file"] not in docs]
    new: list[Entry] = []
    for name in docs:
        keep = {e["command"]: e for e in recorded if args.missing and e["file"] == name
                and e["status"] not in ("failed", "timeout", "pending")}
        if args.select:
            keep = {c.text: {"file": name, "line": c.line, "command": c.text, "status": "not run",
                             "note": "not selected"} for c in commands if c.file == name
                    and not re.search(args.select, c.text)}
            keep.update({e["command"]: e for e in recorded if e["file"] == name and e["command"] in keep})
        prereqs = [Entry(**e) for e in recorded if e["file"] == name and e["status"] == "prereq"] if keep else []
        new += prereqs + run_doc(name, [c for c in commands if c.file == name], args.scratch,
                                 args.data.resolve(), args.timeout, keep,
                                 args.output.with_suffix(".partial.jsonl"))
    import torch

    results = old + [asdict(e) for e in new]
    if args.output.exists():
        results += [e for e in json.loads(args.output.read_text()).get("superseded", []) if e not in results]
    for other in args.merge:
        extra = {(e["file"], e["command"]): e for e in json.loads(other.read_text())["results"]
                 if e["status"] not in ("not run", "prereq") or e["note"] != "not selected"}
        results = [extra.pop((e["file"], e["command"]), e) for e in results] + list(extra.values())
    current = {(c.file, c.text): c.line for c in commands}
    if args.pending:  # list the commands not timed yet, so the JSON names every command of the docs
        have = {(e["file"], e["command"]) for e in results}
        results += [asdict(Entry(c.file, c.line, c.text, status="synopsis" if c.synopsis else "pending",
                                 note=args.pending)) for c in commands if (c.file, c.text) not in have]
    superseded = [e for e in results if e["status"] != "prereq" and (e["file"], e["command"]) not in current]
    results = [e for e in results if e not in superseded]
    for e in results:
        e["line"] = current.get((e["file"], e["command"]), e["line"])
        e["needs_label"] = bool(e.get("needs_label")) or e["status"] == "timeout" or (e["seconds"] or 0) >= LONG_S
        if e["status"] == "prereq":
            e["needs_label"] = False
    results.sort(key=lambda e: (DOCS.index(e["file"]) if e["file"] in DOCS else 99, e["line"]))
    payload = {
        "benchmark": "doc_commands",
        "threads": 1,
        "torch": torch.__version__,
        "claim": "every README/docs command finishes in minutes on this CPU (one thread) or is labelled "
                 "with its time",
        "timing": "one run each, wall seconds, on a shared 2-core machine (load average beside each: upper "
                  "bounds measured under load)",
        "inputs": "photo.png and image.png: a 256x256 crop of kodim05 (rows 128-383, columns 256-511); "
                  "weights.npz: a random 2-32-32-1 SIREN weight list",
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count()},
        "results": results,
        "superseded": superseded,  # runs of commands the docs no longer contain (e.g. before a CPU-sized edit)
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(args.output)
    failed = [e for e in new if e.status in ("failed", "timeout")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
