"""Crafted hostile inputs: how the ``inrkit`` command line handles each one (exit code, CPU, peak memory).

Every case crafts its input in a temporary folder with inrkit's own writers (a real file, valid apart from
what it claims: a grid ``.inrz`` whose header asks for 2048 x 2048 pixels from an empty latent stream, a
model whose header ``signal.shape`` asks ``render`` for 11585^2 pixels, a 5792^2 JPEG handed to ``eval``...),
then runs the matching command as ``python -m inrkit ...`` in a child process and records:

  bytes        size of the crafted input file (none for an argument case)
  cpu_s        CPU seconds of the child (user + sys, ``os.wait4``)
  peak_mb      peak resident memory of the child (``ru_maxrss``, MiB)
  wall_s       wall seconds
  exit         exit code (negative: killed by that signal)
  outcome      decoded / accepted (exit 0: the command did its work; ``accepted`` for an argument case),
               refused (exit 2: a one-line error, a usage error included), out of memory (exit 2 with the
               CLI's MemoryError line: the child hit its address-space limit), crashed (exit 1, an internal
               error), timeout (killed at ``--cpu-limit`` CPU seconds, 30, or ``--timeout`` wall seconds, 90),
               killed (another signal), exit N otherwise
  stderr       number of stderr lines, the first one (truncated) and its length

``extra_cpu_s`` and ``extra_mb`` compare each case with a baseline run of the same kind on a tiny valid file
(``inrkit info`` of a 2-8-8-1 SIREN; ``inrkit decode`` of a 16 x 16 grid ``.inrz`` for the decode cases; the
median of 3 runs): the target is "decoded or refused within 2 s of CPU and 512 MB beyond the baseline"
(``within_target``). ``before_work`` marks a refusal that cost under 1.5 s of CPU and 64 MB beyond the baseline
(the interpreter and the torch import are in the baseline); ``--rescore`` recomputes these comparisons from the
stored numbers. Each child runs with ``RLIMIT_AS`` = ``--memory-gib`` (4 GiB), ``RLIMIT_CPU`` = ``--cpu-limit``
(30 s; a CPU limit, so a loaded machine does not turn a slow decode into a timeout) and one thread
(``OMP_NUM_THREADS=1``, ``INRKIT_THREADS=1``).

Some cases record facts besides the exit: ``decode --reference`` with a file that is no image (was the
output written?), ``fit`` onto a full disk (``RLIMIT_FSIZE``; is the file named, is a temporary file left
behind, is the existing output intact?), and a ``fit --steps 60`` killed after its first checkpoint and
resumed (how many steps do the summary and the history report?).

The results of a run are stored under a label in ``bench/results/crafted_limits.json`` (another label's
results are kept), so one file holds the numbers of two source trees::

    .venv/bin/python bench/crafted_limits.py --label after           # the tree inrkit is imported from
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python bench/crafted_limits.py --label before
    .venv/bin/python bench/crafted_limits.py --label after --only grid,render   # rerun some cases (merged)
    .venv/bin/python bench/crafted_limits.py --label after --markdown           # the stored table, Markdown
    .venv/bin/python bench/crafted_limits.py --label after --rescore            # comparisons again, no run
    .venv/bin/python bench/crafted_limits.py --list                               # the case names

``PYTHONPATH`` takes precedence over the editable install, for the crafting and for every child; the
environment block records which tree ran (``inrkit``: its path, ``commit``, ``dirty``). About 5-8 minutes
on a shared 2-core machine (the timeouts bound it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "crafted_limits.json"
TARGET_CPU_S = 2.0  # beyond the baseline
TARGET_MB = 512.0  # beyond the baseline
BEFORE_WORK_CPU_S = 1.5  # a refusal this cheap (beyond the baseline) came before the work...
BEFORE_WORK_MB = 64.0  # ...and allocated less than this beyond the baseline
STDERR_CHARS = 200  # first stderr line kept in the results
EVAL_SHAPE_SIDE = 16  # the small model's image (the eval cases hand it other shapes)


# ------------------------------------------------------------------ running a child
@dataclass
class Limits:
    """What a child may use: seconds of wall time, address space, and (optionally) the largest file it may write."""

    timeout: float = 90.0
    memory: int = 4 << 30
    fsize: int | None = None
    cpu: int = 30


def child_env() -> dict[str, str]:
    """The parent's environment (PYTHONPATH included), one thread, no debug tracebacks, no bytecode files."""
    env = dict(os.environ)
    env.pop("INRKIT_DEBUG", None)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", INRKIT_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               TQDM_DISABLE="1")
    return env


def run_cli(args: list[str], cwd: Path, limits: Limits,
            watch: Callable[[subprocess.Popen, float], None] | None = None) -> dict[str, Any]:
    """Run ``python -m inrkit ARGS`` in ``cwd`` under ``limits``; exit code, CPU, peak memory and stderr.

    ``watch(process, elapsed)`` is called every 20 ms while the child runs (to signal it midway).
    """
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu, limits.cpu + 2))  # SIGXCPU, then SIGKILL
        if limits.fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.fsize, limits.fsize))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "inrkit", *args], cwd=cwd, env=child_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, preexec_fn=preexec,
                                start_new_session=True)
        timed_out, limit_hit = False, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.perf_counter() - t0
            if elapsed > limits.timeout:
                timed_out, limit_hit = True, "wall"
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            if watch is not None:
                watch(proc, elapsed)
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    cpu = usage.ru_utime + usage.ru_stime
    if not timed_out and code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu >= limits.cpu:
        timed_out, limit_hit = True, "cpu"
    return {"exit": code, "timed_out": timed_out, "limit_hit": limit_hit, "cpu_s": round(cpu, 3),
            "user_s": round(usage.ru_utime, 3), "sys_s": round(usage.ru_stime, 3),
            "peak_mb": round(usage.ru_maxrss / 1024.0, 1), "wall_s": round(wall, 3), "stderr_lines": len(lines),
            "stderr_first": first[:STDERR_CHARS], "stderr_first_len": len(first), "stdout": stdout,
            "stderr": text}


def outcome(res: dict[str, Any], ok: str) -> str:
    """The outcome word of a run (``ok``: the word for exit 0)."""
    code = res["exit"]
    if res["timed_out"]:
        return "timeout"
    if code == 0:
        return ok
    if code == 2:
        return "out of memory" if "not enough memory" in res["stderr_first"] else "refused"
    if code == 1:
        return "crashed"
    if code < 0:
        return f"killed ({signal.Signals(-code).name})"
    return f"exit {code}"


# ------------------------------------------------------------------ crafting (inrkit's own writers)
def tiny_image(path: Path, side: int = 16, channels: int = 3) -> Path:
    """A smooth ``side`` x ``side`` PNG."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:side, 0:side]
    px = np.stack([127 + 100 * np.sin(xx / 3 + c) * np.cos(yy / 4) for c in range(channels)], -1).astype(np.uint8)
    Image.fromarray(px[..., 0] if channels == 1 else px).save(path)
    return path


def tiny_model(path: Path, image: Path, hidden: list[int], seed: int = 0) -> Path:
    """An untrained SIREN saved with ``save_model`` for ``image`` (a valid model file of that signal)."""
    import torch

    from inrkit.models import build_model
    from inrkit.models.io import save_model
    from inrkit.signals import load_signal

    sig = load_signal(image)
    model = build_model("siren", 2, sig.out_dim, hidden, generator=torch.Generator().manual_seed(seed))
    save_model(model, path, signal=sig.metadata())
    return path


def tiny_grid(path: Path, image: Path, steps: int = 10) -> Path:
    """A real grid ``.inrz`` of ``image`` (``encode_latent_image``, a few training steps)."""
    from inrkit.compress.encode.latent import encode_latent_image

    encode_latent_image(image, path, steps=steps, progress=False)
    return path


def grid_with_header(src: Path, dst: Path, shape: tuple[int, int], latents: bytes | None = None) -> Path:
    """``src`` (a grid ``.inrz``) with its header's shape set to ``shape`` and, when given, the latent stream
    replaced by ``latents`` (``b""``: empty); repacked with a valid checksum."""
    from inrkit.compress.decode.container import pack, unpack

    header, sections = unpack(src.read_bytes())
    header = {k: v for k, v in header.items() if k != "sizes"}
    header["shape"] = list(shape)
    if isinstance(header.get("signal"), dict) and "shape" in header["signal"]:
        header["signal"]["shape"] = list(shape)
    if latents is not None:
        sections = [latents, *sections[1:]]
    dst.write_bytes(pack(header, sections, version=2))
    return dst


def grid_wide_latents(src: Path, dst: Path, side: int, bits: int = 14) -> Path:
    """A valid grid ``.inrz`` of ``side`` x ``side`` pixels with ``bits``-bit latents (one latent at the top
    of the range, the rest 0) under a context model that always predicts the narrowest Laplace, so the
    latent stream is a few KB; the synthesis network is ``src``'s."""
    import numpy as np

    from inrkit.compress.decode import latent as lc

    img = lc.read(src.read_bytes())
    shapes = lc.level_shapes(side, side, len(img.latents))
    latents = [np.zeros(s, np.int64) for s in shapes]
    latents[0][0, 0] = (1 << (bits - 1)) - 1
    arm_shapes = lc.arm_shapes(img.arm_widths[1:-1])
    arm = lc.FixedArm([np.zeros(s, np.int64) for s in arm_shapes], [np.zeros(s[0], np.int64) for s in arm_shapes],
                      fw=img.arm.fw)
    signal_meta = dict(img.signal)
    if "shape" in signal_meta:
        signal_meta["shape"] = [side, side]
    big = lc.LatentImage((side, side), img.channels, latents, arm, img.synth_w, img.synth_b, img.q, signal_meta)
    dst.write_bytes(lc.write(big))
    return dst


def coin_image(model_path: Path, dst: Path, side: int) -> Path:
    """A ``coin`` ``.inrz`` of the model at ``model_path`` whose image metadata asks for ``side`` x ``side``."""
    from inrkit.compress.encode.encoder import compress_model
    from inrkit.models.io import load_model

    model, header = load_model(model_path)
    meta = dict(header.get("signal") or {}, shape=[side, side])
    dst.write_bytes(compress_model(model, "coin", signal=meta))
    return dst


def model_with_shape(src: Path, dst: Path, shape: list[int]) -> Path:
    """``src`` (a model file) with header ``signal.shape`` = ``shape`` and its SHA-256 digest recomputed."""
    from safetensors import safe_open
    from safetensors.torch import save

    from inrkit.models import io

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    header = json.loads(meta["inrkit"])
    header.pop("sha256", None)
    header["signal"] = dict(header.get("signal") or {}, shape=list(shape))
    header["sha256"] = io.digest(tensors, list(io.expected_shapes(header)), header)
    dst.write_bytes(save(tensors, metadata={**meta, "inrkit": json.dumps(header)}))
    return dst


def grey_jpeg(path: Path, side: int) -> Path:
    """A flat grey ``side`` x ``side`` JPEG (every block coded, about 12 bits each)."""
    from PIL import Image

    Image.new("L", (side, side), 128).save(path, format="JPEG", quality=75)
    return path


def flat_png(path: Path, side: int) -> Path:
    """A mostly flat RGB ``side`` x ``side`` PNG (one small gradient in a corner)."""
    import numpy as np
    from PIL import Image

    px = np.full((side, side, 3), 90, np.uint8)
    px[:64, :64] = np.arange(64, dtype=np.uint8)[None, :, None] * 3
    Image.fromarray(px).save(path, format="PNG")
    return path


def zlib_vti(path: Path, side: int) -> Path:
    """A ``side``^3 float32 volume, mostly 0, as zlib-compressed ``.vti`` (inrkit's ``write_vti``)."""
    import numpy as np

    from inrkit.signals.readers import write_vti

    vol = np.zeros((side, side, side), np.float32)
    vol[:16, :16, :16] = np.linspace(0, 1, 16, dtype=np.float32)
    write_vti(path, vol)
    return path


def npy_header(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> Path:
    """A ``.npy`` file with only a header declaring ``shape`` (no data)."""
    import numpy as np

    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return path


def truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` of ``src``."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


# ------------------------------------------------------------------ the cases
@dataclass
class Case:
    """One hostile input: ``run(ctx, folder)`` crafts it in ``folder`` and returns the run's record."""

    name: str
    group: str
    run: Callable[[Context, Path], dict[str, Any]]
    baseline: str = "info"  # which baseline its extra CPU and memory are measured against


class Context:
    """Shared fixtures (a tiny image, model and grid file) and the limits of every child."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root
        self.limits = limits
        self.image = tiny_image(root / "tiny.png")
        self.model = tiny_model(root / "tiny8.safetensors", self.image, [8, 8])
        self.model16 = tiny_model(root / "tiny16.safetensors", self.image, [16, 16])
        self.model35 = tiny_model(root / "tiny35.safetensors", self.image, [35, 35])
        self.grid = tiny_grid(root / "tiny.inrz", self.image)

    def run(self, args: list[Any], folder: Path, *, file: Path | None = None, ok: str = "decoded",
            limits: Limits | None = None, watch: Callable[[subprocess.Popen, float], None] | None = None,
            **extra: Any) -> dict[str, Any]:
        res = run_cli([str(a) for a in args], folder, limits or self.limits, watch)
        res["outcome"] = outcome(res, ok)
        res["bytes"] = file.stat().st_size if file is not None and file.is_file() else None
        res["command"] = "inrkit " + " ".join(str(a).replace(str(self.root) + "/", "") for a in args)
        res.update(extra)
        return res


def _decode(make: Callable[[Context, Path], Path]) -> Callable[[Context, Path], dict[str, Any]]:
    def run(ctx: Context, folder: Path) -> dict[str, Any]:
        f = make(ctx, folder)
        return ctx.run(["decode", f.name, "-o", "out.png"], folder, file=f)
    return run


def _render(side: int) -> Callable[[Context, Path], dict[str, Any]]:
    def run(ctx: Context, folder: Path) -> dict[str, Any]:
        f = model_with_shape(ctx.model35, folder / f"m{side}.safetensors", [side, side])
        return ctx.run(["render", f.name, "-o", "x.png"], folder, file=f)
    return run


def _eval(make: Callable[[Path], Path]) -> Callable[[Context, Path], dict[str, Any]]:
    def run(ctx: Context, folder: Path) -> dict[str, Any]:
        f = make(folder)
        return ctx.run(["eval", ctx.model, f.name], folder, file=f)
    return run


def _cli(*args: Any, file: str | None = None) -> Callable[[Context, Path], dict[str, Any]]:
    """An argument case: ``{image}``, ``{model}`` and ``{grid}`` in ``args`` name the shared fixtures."""
    def run(ctx: Context, folder: Path) -> dict[str, Any]:
        names = {"{image}": ctx.image, "{model}": ctx.model, "{grid}": ctx.grid}
        argv = [names.get(str(a), a) for a in args]
        return ctx.run(argv, folder, file=names.get(file or "", None), ok="accepted")
    return run


def _decode_bad_reference(ctx: Context, folder: Path) -> dict[str, Any]:
    ref = folder / "notimg.png"
    ref.write_text("this is not an image\n")
    res = ctx.run(["decode", ctx.grid, "-o", "out.png", "--reference", ref.name], folder, file=ctx.grid,
                  ok="accepted")
    res["wrote_output"] = (folder / "out.png").exists()
    return res


def _full_disk(ctx: Context, folder: Path) -> dict[str, Any]:
    """``fit`` onto a disk that takes 4 KiB per file; the output exists already (a valid 6 KB model)."""
    out = folder / "m.safetensors"
    out.write_bytes(ctx.model35.read_bytes())
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    res = ctx.run(["fit", ctx.image, "-o", out.name, "--hidden", "32x3", "--steps", "2", "--no-progress"], folder,
                  file=ctx.image, ok="accepted", limits=replace(ctx.limits, fsize=4096))
    res["names_file"] = out.name in res["stderr"]
    res["exit_2"] = res["exit"] == 2
    res["left_files"] = sorted(p.name for p in folder.iterdir() if p.name != out.name)
    res["existing_intact"] = out.exists() and hashlib.sha256(out.read_bytes()).hexdigest() == before
    return res


def _checkpoint_step(path: Path) -> int | None:
    """The ``step`` of a checkpoint's metadata (None when unreadable)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        for key in ("inrkit-checkpoint", "inrkit"):
            if key in meta:
                return int(json.loads(meta[key])["step"])
    except Exception:  # noqa: BLE001 - a partly written file: no step
        return None
    return None


def _resume(sig: signal.Signals) -> Callable[[Context, Path], dict[str, Any]]:
    """``fit --steps 60`` killed with ``sig`` once its first checkpoint exists, then ``--resume``."""
    def run(ctx: Context, folder: Path) -> dict[str, Any]:
        image = tiny_image(folder / "img128.png", 128)
        ckpt = folder / "c.ckpt"
        base = ["fit", image.name, "-o", "m.safetensors", "--hidden", "128x3", "--steps", "60", "--checkpoint",
                ckpt.name, "--checkpoint-every", "10", "--no-progress"]
        sent: dict[str, Any] = {}

        def watch(proc: subprocess.Popen, elapsed: float) -> None:
            if not sent and ckpt.exists():  # written atomically: complete once it exists
                os.kill(proc.pid, sig)
                sent["at_s"] = round(elapsed, 3)

        first = ctx.run(base, folder, file=image, ok="accepted", watch=watch)
        killed_at = _checkpoint_step(ckpt)
        second = ctx.run([*base, "--resume", "--json", "--history", "h.json"], folder, file=image, ok="accepted")
        reported = history_steps = None
        steps_logged: list[Any] = []
        try:
            reported = json.loads(second["stdout"].strip().splitlines()[-1]).get("steps")
        except (ValueError, IndexError, AttributeError):
            pass
        try:
            hist = json.loads((folder / "h.json").read_text())["history"]
            steps_logged = [row.get("step") for row in hist]
            history_steps = steps_logged[-1] if steps_logged else None
        except (OSError, ValueError, KeyError, TypeError):
            pass
        res = dict(second)
        res.update(signal=sig.name, signalled=bool(sent), signal_at_s=sent.get("at_s"),
                   first_exit=first["exit"], first_outcome=first["outcome"], first_cpu_s=first["cpu_s"],
                   checkpoint_step_at_kill=killed_at, reported_steps=reported, history_last_step=history_steps,
                   history_steps=steps_logged,
                   steps_equal_60=reported == 60, left_files=sorted(p.name for p in folder.iterdir()))
        return res
    return run


def _grid_empty(ctx: Context, folder: Path) -> Path:
    return grid_with_header(ctx.grid, folder / "empty2048.inrz", (2048, 2048), latents=b"")


def _grid_bits(side: int) -> Callable[[Context, Path], Path]:
    def make(ctx: Context, folder: Path) -> Path:
        return grid_wide_latents(ctx.grid, folder / f"bits14_{side}.inrz", side)
    return make


def _coin(ctx: Context, folder: Path) -> Path:
    return coin_image(ctx.model16, folder / "coin2048.inrz", 2048)


def _grid_truncated(ctx: Context, folder: Path) -> Path:
    return truncated(ctx.grid, folder / "half.inrz")


def _npy_2_40(ctx: Context, folder: Path) -> dict[str, Any]:
    f = npy_header(folder / "big.npy", (1 << 20, 1 << 20))
    return ctx.run(["fit", f.name, "-o", "m.safetensors", "--steps", "1", "--no-progress"], folder, file=f)


CASES: list[Case] = [
    Case("grid 2048^2, empty latent stream", "grid", _decode(_grid_empty), "decode"),
    Case("grid 1024^2, 14-bit latents", "grid", _decode(_grid_bits(1024)), "decode"),
    Case("grid 2048^2, 14-bit latents", "grid", _decode(_grid_bits(2048)), "decode"),
    Case("grid, truncated to half", "grid", _decode(_grid_truncated), "decode"),
    Case("coin 2048^2 (free pixel allowance)", "coin", _decode(_coin), "decode"),
    Case("model signal.shape 4096^2 (render)", "render", _render(4096)),
    Case("model signal.shape 11585^2 (render)", "render", _render(11585)),
    Case("eval: 5792^2 grey JPEG", "eval", _eval(lambda d: grey_jpeg(d / "big.jpg", 5792))),
    Case("eval: 3344^2 flat PNG", "eval", _eval(lambda d: flat_png(d / "big.png", 3344))),
    Case("eval: 320^3 zlib .vti", "eval", _eval(lambda d: zlib_vti(d / "big.vti", 320))),
    Case("npy header 2^40 elements (fit)", "files", _npy_2_40),
    Case("fit --omega0 0", "cli", _cli("fit", "{image}", "-o", "m.safetensors", "--omega0", "0", "--steps", "2",
                                       "--no-progress")),
    Case("fit --omega0 1e-300", "cli", _cli("fit", "{image}", "-o", "m.safetensors", "--omega0", "1e-300",
                                            "--steps", "2", "--no-progress")),
    Case("fit --lr=-1e-3", "cli", _cli("fit", "{image}", "-o", "m.safetensors", "--lr=-1e-3", "--steps", "2",
                                       "--no-progress")),
    Case("fit --hidden 16x1000", "cli", _cli("fit", "{image}", "-o", "m.safetensors", "--hidden", "16x1000",
                                             "--steps", "2", "--no-progress")),
    Case("encode --bpp 0", "cli", _cli("encode", "{image}", "-o", "e.inrz", "--bpp", "0", "--preset", "fast",
                                       "--no-progress")),
    Case("encode --codec sinr --bpp 1e-9", "cli", _cli("encode", "{image}", "-o", "e.inrz", "--codec", "sinr",
                                                       "--bpp", "1e-9", "--steps", "5", "--no-progress")),
    Case("decode --reference notimg.png", "cli", _decode_bad_reference),
    Case("render --size=-4,4", "cli", _cli("render", "{model}", "-o", "x.png", "--size=-4,4")),
    Case("info /dev/zero", "cli", _cli("info", "/dev/zero")),
    Case("compress --overcomplete 1e9", "cli", _cli("compress", "{model}", "-o", "c.inrz", "--overcomplete", "1e9",
                                                    "--no-progress")),
    Case("prune --keep 1.5", "cli", _cli("prune", "{model}", "-o", "p.safetensors", "--keep", "1.5",
                                         "--no-progress")),
    Case("fit onto a full disk (RLIMIT_FSIZE 4 KiB)", "cli", _full_disk),
    Case("fit --steps 60 SIGTERM after a checkpoint, --resume", "resume", _resume(signal.SIGTERM)),
    Case("fit --steps 60 SIGKILL after a checkpoint, --resume", "resume", _resume(signal.SIGKILL)),
]


def baselines(ctx: Context, folder: Path, repeats: int = 3) -> dict[str, dict[str, Any]]:
    """A tiny valid ``info`` and ``decode``: what the interpreter, the imports and a small job cost (the run
    of median CPU of ``repeats``; all CPU seconds in ``cpu_s_runs``)."""
    commands = {"info": ["info", ctx.model], "decode": ["decode", ctx.grid, "-o", "base.png"]}
    out = {}
    for key, args in commands.items():
        runs = sorted((ctx.run(args, folder, file=ctx.model if key == "info" else ctx.grid) for _ in range(repeats)),
                      key=lambda r: r["cpu_s"])
        res = dict(runs[len(runs) // 2])
        res.pop("stdout"), res.pop("stderr")
        res["cpu_s_runs"] = [r["cpu_s"] for r in runs]
        res["peak_mb_runs"] = [r["peak_mb"] for r in runs]
        out[key] = res
    return out


# ------------------------------------------------------------------ results
def environment() -> dict[str, Any]:
    """Where the numbers come from (:func:`inrkit.utils.run_environment`, one thread)."""
    from inrkit.utils import run_environment

    return run_environment(threads=1)


def finish(case: Case, res: dict[str, Any], base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The stored record of a case: its run, compared with its baseline."""
    res = {"case": case.name, "group": case.group, **res}
    res.pop("stdout", None), res.pop("stderr", None)
    res["baseline"] = case.baseline
    return score(res, base)


def score(res: dict[str, Any], base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Add the comparisons with the baseline (``extra_*``, ``within_target``, ``before_work``) to a record."""
    if "cpu_s" not in res:  # not crafted
        return res
    b = base[res["baseline"]]
    res["extra_cpu_s"] = round(res["cpu_s"] - b["cpu_s"], 3)
    res["extra_mb"] = round(res["peak_mb"] - b["peak_mb"], 1)
    res["within_target"] = (res["outcome"] in ("decoded", "accepted", "refused")
                            and res["extra_cpu_s"] <= TARGET_CPU_S and res["extra_mb"] <= TARGET_MB)
    res["before_work"] = (res["outcome"] == "refused" and res["extra_cpu_s"] < BEFORE_WORK_CPU_S
                          and res["extra_mb"] < BEFORE_WORK_MB)
    return res


def markdown(run: dict[str, Any]) -> str:
    """The Markdown table of one labelled run."""
    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    rows = ["| case | bytes | CPU s | peak MB | exit | outcome | stderr (first line) |",
            "|---|---:|---:|---:|---:|---|---|"]
    for r in run["results"]:
        first = r.get("stderr_first", "").replace("|", "\\|")
        first = first if len(first) <= 90 else first[:87] + "..."
        if r.get("stderr_first_len", 0) > 200:
            first += f" ({r['stderr_first_len']} chars)"
        rows.append(f"| {r['case']} | {num(r.get('bytes'), ',')} | {num(r.get('cpu_s'), '.2f')} | "
                    f"{num(r.get('peak_mb'), '.0f')} | {r.get('exit', '-')} | {r['outcome']} | {first} |")
    b = run.get("baseline", {})
    notes = [f"Baseline: {k} of a tiny valid file, {v['cpu_s']:.2f} s CPU, {v['peak_mb']:.0f} MB peak."
             for k, v in b.items()]
    for r in run["results"]:
        facts = {k: r[k] for k in ("wrote_output", "names_file", "left_files", "existing_intact", "first_exit",
                                   "checkpoint_step_at_kill", "reported_steps", "history_steps")
                 if k in r}
        if facts:
            notes.append(f"{r['case']}: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def comparison(data: dict[str, Any], before: str = "before", after: str = "after") -> str:
    """The before/after table of docs/limits.md: per case, file size, CPU seconds and peak memory beyond the
    baseline of the same command, exit code and outcome, in both runs."""
    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    old = {r["case"]: r for r in data["runs"][before]["results"]}
    rows = ["| case | bytes | before: +CPU s, +MB, exit, outcome | after: +CPU s, +MB, exit, outcome | after within "
            "2 s, 512 MB |", "|---|---:|---|---|---|"]
    for r in data["runs"][after]["results"]:
        b = old.get(r["case"], {})
        cells = [f"{num(x.get('extra_cpu_s'), '.2f')}, {num(x.get('extra_mb'), '.0f')}, {x.get('exit', '-')}, "
                 f"{x.get('outcome', 'not run')}" if x else "not run" for x in (b, r)]
        ok = "yes" if r.get("within_target") else "no"
        if r.get("group") == "resume":  # not a hostile file: a real fit, judged by the steps it trained
            ok = f"n/a (a real fit: {r.get('reported_steps')} steps reported, 60 asked)"
        rows.append(f"| {r['case']} | {num(r.get('bytes'), ',')} | {cells[0]} | {cells[1]} | {ok} |")
    return "\n".join(rows) + "\n"


LIMITS_DOC = Path(__file__).resolve().parents[1] / "docs" / "limits.md"
BEGIN, END = "<!-- crafted:begin -->", "<!-- crafted:end -->"


def with_table(doc: str, data: dict[str, Any]) -> str:
    """``doc`` (docs/limits.md) with the before/after table between the crafted markers."""
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    env = data["runs"]["after"].get("environment", {})
    note = (f"Measured {str(env.get('date', ''))[:10]} ({env.get('cpu', '')}, torch {env.get('torch', '')}, one "
            "thread; +CPU s and +MB are beyond the baseline run of the same command).")
    return f"{head}{BEGIN}\n{comparison(data)}\n{note}\n{END}{tail}"


def store(label: str, run: dict[str, Any], path: Path, merge: bool) -> None:
    """Put ``run`` under ``label`` in ``path`` (other labels kept). ``merge``: only its cases are replaced; the
    label's environment and baseline stay, the rerun's are appended to ``reruns`` (each case's extra CPU and
    memory are measured against the baseline of the run that measured it)."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data.update({
        "benchmark": "crafted_limits",
        "claim": f"every crafted hostile input is decoded or refused within {TARGET_CPU_S:g} s of CPU and "
                 f"{TARGET_MB:g} MB of peak memory beyond a tiny valid run of the same command",
        "timing": "one run per case, each a fresh `python -m inrkit` child (CPU: user + sys of the child; peak: "
                  "its ru_maxrss), RLIMIT_AS and a wall-time limit per child, one thread, shared 2-core machine",
        "command": "bench/crafted_limits.py --label LABEL (PYTHONPATH=TREE/src to measure another source tree)",
    })
    runs = data.setdefault("runs", {})
    if merge and label in runs:
        names = {r["case"] for r in run["results"]}
        old = [r for r in runs[label]["results"] if r["case"] not in names]
        order = [c.name for c in CASES]
        merged = old + run["results"]
        merged.sort(key=lambda r: order.index(r["case"]) if r["case"] in order else len(order))
        rerun = {k: run[k] for k in ("environment", "limits", "seconds", "baseline")}
        rerun["cases"] = sorted(names)
        run = {**runs[label], "results": merged, "reruns": [*runs[label].get("reruns", []), rerun]}
    runs[label] = run
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--label", default="after", help="results key in the JSON (e.g. before, after)")
    p.add_argument("--only", default="", help="comma-separated substrings of case names or groups to run "
                                              "(merged into the label's stored results)")
    p.add_argument("--cpu-limit", type=int, default=30, help="CPU seconds per child (RLIMIT_CPU)")
    p.add_argument("--timeout", type=float, default=90.0, help="wall seconds per child before it is killed")
    p.add_argument("--memory-gib", type=float, default=4.0, help="RLIMIT_AS of every child, GiB")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--markdown", action="store_true", help="print the stored table of --label and exit")
    p.add_argument("--compare", action="store_true", help="print the stored before/after table and exit")
    p.add_argument("--docs", action="store_true", help="with --compare: write the table into docs/limits.md")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--rescore", action="store_true", help="recompute the comparisons of --label's stored results "
                                                          "with its baselines (no run)")
    p.add_argument("--no-write", action="store_true", help="run and print, do not touch the JSON")
    a = p.parse_args(argv)
    if a.list:
        print("\n".join(f"{c.group:7s} {c.name}" for c in CASES))
        return 0
    if a.rescore:
        data = json.loads(a.output.read_text())
        run = data["runs"][a.label]
        for rec in [run, *run.get("reruns", [])]:
            for res in run["results"]:
                if res["case"] in rec.get("cases", [res["case"]]):
                    score(res, rec["baseline"])
        store(a.label, run, a.output, merge=False)
        print(markdown(run), end="")
        return 0
    if a.compare:
        data = json.loads(a.output.read_text())
        if a.docs:
            LIMITS_DOC.write_text(with_table(LIMITS_DOC.read_text(), data))
        print(comparison(data), end="")
        return 0
    if a.markdown:
        runs = json.loads(a.output.read_text())["runs"] if a.output.exists() else {}
        if a.label not in runs:
            print(f"no results labelled {a.label!r} in {a.output}", file=sys.stderr)
            return 2
        print(markdown(runs[a.label]), end="")
        return 0
    wanted = [s.strip() for s in a.only.split(",") if s.strip()]
    cases = [c for c in CASES if not wanted or any(w in c.name or w == c.group for w in wanted)]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    env = environment()
    print(f"inrkit from {env['inrkit']} (commit {env['commit']}, dirty {env['dirty']})", file=sys.stderr)
    limits = Limits(a.timeout, int(a.memory_gib * (1 << 30)), cpu=a.cpu_limit)
    results = []
    with tempfile.TemporaryDirectory(prefix="crafted_limits_") as tmp:
        root = Path(tmp)
        ctx = Context(root, limits)
        (root / "baseline").mkdir()
        base = baselines(ctx, root / "baseline")
        for c in cases:
            folder = root / f"case{CASES.index(c):02d}"
            folder.mkdir()
            try:
                res = finish(c, c.run(ctx, folder), base)
            except Exception as exc:  # noqa: BLE001 - a case that cannot be crafted on this tree is recorded
                res = {"case": c.name, "group": c.group, "outcome": "not crafted",
                       "stderr_first": f"{type(exc).__name__}: {exc}"[:STDERR_CHARS]}
            results.append(res)
            print(f"{c.name:55s} {res['outcome']:14s} cpu {res.get('cpu_s', '-')} s  peak {res.get('peak_mb', '-')}"
                  f" MB  {res.get('stderr_first', '')[:80]}", file=sys.stderr)
    env["loadavg_end"] = list(os.getloadavg())
    run = {"environment": env, "limits": {"rlimit_cpu_s": a.cpu_limit, "wall_timeout_s": a.timeout,
                                          "rlimit_as_gib": a.memory_gib},
           "seconds": round(time.perf_counter() - t0, 1), "baseline": base, "results": results}
    if not a.no_write:
        store(a.label, run, a.output, merge=bool(wanted))
    print(markdown(run), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
