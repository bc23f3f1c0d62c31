"""The job layer behind ``inrkit fit-many``, ``encode --many`` and ``mesh --many``: many inputs, one output each.

A dataset (files, folders, globs, series manifests) is expanded into :class:`~inrkit.runner.Item` s. ``fit-many``
groups them by signal shape and cuts them into batches of at most ``batch`` items; each batch is one
:func:`inrkit.train.batched.fit_many` run (all members trained at once), run in this process or as
a Ray task (``ray.init()`` with no address starts a local Ray; ``ray_address`` joins a cluster).
``encode --many`` and ``mesh --many`` (:func:`run_each`) process one item after the other.

All of them run through :class:`inrkit.runner.Runner`, which gives them one behaviour and one summary:

- **Resumable**: an item whose output a previous run finished is skipped (status ``skipped``): for ``fit-many``
  an output that loads with :func:`~inrkit.models.load_model` and was fitted from the same source with the same
  settings; for the others an output unchanged since the last run wrote it (SHA-256) that still validates.
- **Atomic**: every output is written to a temporary file and renamed into place; an interrupted run keeps
  every finished item.
- **Isolated failures**: an item that cannot be read, or whose work fails, gives one ``failed`` row;
  the other items complete.
- Every ``fit-many`` item is fitted exactly as ``inrkit fit ITEM --seed S`` would be (same initial weights, same
  seed), and its file is identical in format (header ``extra``: arch, seed, steps, source, config).
- One summary per run: ``summary.json`` and ``summary.csv`` in the output folder (see :mod:`inrkit.runner`).
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import numpy as np

from inrkit.api import AUTO, ModelSpec, run_config
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.metrics import size_report
from inrkit.models import load_model, save_model
from inrkit.models.mlp import MLP
from inrkit.runner import Done, Item, Runner, one_line, unchanged_output
from inrkit.signals import SignalOptions, load_signal
from inrkit.signals.kinds import suffixes as signal_suffixes
from inrkit.train import FitConfig

MAX_ITEMS = 1 << 20  # items one job may list (inputs after expanding folders, globs and manifests)
MAX_BATCH = 4096  # signals one batched fit may hold
MODEL_SUFFIX = ".safetensors"
GLOB_CHARS = set("*?[")


@dataclass
class JobOptions:
    """How ``fit-many`` runs its batches.

    Args:
        batch: signals fitted together in one batched run (same shape; memory grows with it).
        ray: run the batches as Ray tasks (a local Ray on this machine unless --ray-address is given).
        ray_address: join this existing Ray cluster (``auto``: the Ray already running on this machine, started
            with ``ray start --head``, so no start-up is paid; or ray://HEAD:10001); implies --ray.
        ray_workers: CPUs of the local Ray that --ray starts (one task per CPU at a time; none: all usable
            cores); ignored with --ray-address.
        redo: fit every item again, also those whose output already exists and validates.
    """

    batch: int = 8
    ray: bool = False
    ray_address: str | None = None
    ray_workers: int | None = None
    redo: bool = False

    def __post_init__(self) -> None:
        if type(self.batch) is not int or not 1 <= self.batch <= MAX_BATCH:
            raise InvalidInputError(f"--batch must be an integer in [1, {MAX_BATCH}], got {self.batch}")
        if self.ray_address is not None:
            if not self.ray_address.strip():
                raise InvalidInputError("--ray-address: empty address")
            self.ray = True
        if self.ray_workers is not None and (type(self.ray_workers) is not int or not 1 <= self.ray_workers <= 1024):
            raise InvalidInputError(f"--ray-workers must be an integer in [1, 1024], got {self.ray_workers}")


def model_path(item: Item, outdir: str | os.PathLike) -> Path:
    """Where ``fit-many`` writes ``item``'s model."""
    return Path(outdir) / f"{item.name}{MODEL_SUFFIX}"


@dataclass
class Outcome:
    """What a batch returns per item: the fitted model (or the error) and its numbers."""

    name: str
    status: str  # "ok" or "failed"
    model: MLP | None = None
    signal: dict[str, Any] | None = None
    steps: int = 0
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    batched: bool | None = None  # trained in a stack (fit_many's measured choice) or one at a time


# ------------------------------------------------------------------ inputs
def _is_glob(text: str) -> bool:
    return bool(GLOB_CHARS & set(text)) and not Path(text).exists()


def _series_items(manifest: Path) -> list[Item]:
    """One item per member of a series manifest (each member fitted on its own, as ``inrkit fit MEMBER``)."""
    from inrkit.signals.series import _member_paths, _read_manifest

    man = _read_manifest(manifest)
    paths = _member_paths(manifest.parent, list(man["files"]), manifest)
    options: tuple[tuple[str, Any], ...] = ()
    if "dims" in man and isinstance(man["dims"], list):
        options = (("dims", tuple(man["dims"])), ("dtype", str(man.get("dtype", "uint8"))))
    return [Item(p.stem, str(p), options if p.suffix.lower() == ".raw" else ()) for p in paths]


def expand_inputs(inputs: Sequence[str | os.PathLike], suffixes: Sequence[str] | None = None,
                  what: str = "signal") -> list[Item]:
    """The items of a job: each input is a signal file, a folder (its signal files, sorted; a folder
    with ``manifest.json`` is a series), a series ``manifest.json``, or a glob (``'crops/*.png'``).

    Names are the files' stems, made unique with ``-2``, ``-3``... in input order. Raises
    :class:`InvalidFileError` for a missing input, a glob or folder without signals, a bad manifest,
    or an explicit file of no known signal format; before anything is fitted.

    ``suffixes``/``what``: other files than signals (e.g. ``(".safetensors", ".npz")``, ``"model"``);
    series manifests are then plain files.
    """
    known = {s for s in (signal_suffixes() if suffixes is None else (s.lower() for s in suffixes)) if s.startswith(".")}
    series = suffixes is None
    items: list[Item] = []
    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text)
        if _is_glob(text):
            found = sorted(p for p in glob.glob(text, recursive=True) if _known_suffix(p, known))
            if not found:
                raise InvalidFileError(f"{text}: the pattern matches no {what} files")
            items += [Item(_stem(p, known), p) for p in found]
        elif path.is_dir():
            if series and (path / "manifest.json").is_file():
                items += _series_items(path / "manifest.json")
            else:
                found = sorted(str(p) for p in path.iterdir() if p.is_file() and _known_suffix(p, known))
                if not found:
                    raise InvalidFileError(f"{text}: a folder without {what} files ({', '.join(sorted(known))})")
                items += [Item(_stem(p, known), p) for p in found]
        elif series and path.name == "manifest.json" and path.is_file():
            items += _series_items(path)
        elif not path.exists():
            raise InvalidFileError(f"{text}: no such file")
        elif not _known_suffix(path, known):
            raise InvalidFileError(f"{text}: unsupported format {path.suffix!r} (known: {', '.join(sorted(known))})")
        else:
            items.append(Item(_stem(path, known), text))
        if len(items) > MAX_ITEMS:
            raise InvalidInputError(f"more than {MAX_ITEMS} items in one job")
    if not items:
        raise InvalidInputError("no inputs")
    used: set[str] = set()
    unique = []
    for item in items:
        name, count = item.name, 1
        while name in used:
            count += 1
            name = f"{item.name}-{count}"
        used.add(name)
        unique.append(replace(item, name=name, group=_shape_key(item)))
    return unique


def _known_suffix(path: str | os.PathLike, known: set[str]) -> str | None:
    """The suffix in ``known`` that ``path``'s name ends with, the longest first (``.nii.gz``)."""
    name = Path(path).name.lower()
    return next((s for s in sorted(known, key=len, reverse=True) if name.endswith(s) and len(name) > len(s)), None)


def _stem(path: str | os.PathLike, known: set[str]) -> str:
    """The file name without its known suffix (``scan.nii.gz`` -> ``scan``)."""
    name, suffix = Path(path).name, _known_suffix(path, known)
    return name[: len(name) - len(suffix)] if suffix else Path(path).stem


def _shape_key(item: Item) -> Any:
    """A cheap guess of the signal's shape (image size, ``.npy`` header), to batch alike signals; the
    batch regroups by the loaded shapes anyway, so a wrong or missing guess costs speed only."""
    suffix = Path(item.source).suffix.lower()
    try:
        if suffix == ".npy":
            with open(item.source, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)(handle)
            return (suffix, tuple(header[0]))
        if suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(item.source) as img:
                return ("image", img.size, img.mode)
    except Exception:  # an unreadable file fails later, as its own row
        return (suffix, None)
    return (suffix, item.options)


def make_batches(items: Sequence[Item], batch: int) -> list[list[Item]]:
    """Group items by shape key (first appearance order) and cut each group into batches of ``batch``."""
    groups: dict[Any, list[Item]] = {}
    for item in items:
        groups.setdefault(repr(item.group), []).append(item)
    return [g[i:i + batch] for g in groups.values() for i in range(0, len(g), batch)]


# ------------------------------------------------------------------ one batch (in-process or a Ray task)
def _fit_many(models: list[MLP], signals: list[Any], config: FitConfig) -> list[Any]:
    from inrkit.train.batched import fit_many

    return cast(list[Any], fit_many(models, signals, config))


def run_batch(items: Sequence[Item], spec: ModelSpec, config: FitConfig,
              options: SignalOptions) -> list[Outcome]:
    """Load and fit one batch: the signals of one shape are fitted together by ``fit_many``; an item that
    fails to load fails alone, and a batched fit that fails is retried member by member."""
    import torch

    config = replace(config, progress=False, history_path=None, checkpoint_path=None, resume=False, plot_path=None)
    outcomes: dict[str, Outcome] = {}
    loaded: dict[Any, list[tuple[Item, Any]]] = {}
    for item in items:
        try:
            kwargs = {**options.kwargs(), **dict(item.options)}
            signal = load_signal(item.source, seed=config.seed, **kwargs)
            key = (signal.dim, signal.out_dim, repr(signal.metadata().get("shape")), type(signal).__name__)
            loaded.setdefault(key, []).append((item, signal))
        except Exception as exc:  # one bad input: one failed row
            outcomes[item.name] = Outcome(item.name, "failed", error=one_line(exc))

    def fit_group(group: list[tuple[Item, Any]]) -> None:
        start = time.perf_counter()
        models = [spec.build(s.dim, s.out_dim, torch.Generator().manual_seed(config.seed)) for _, s in group]
        results = _fit_many(models, [s for _, s in group], config)
        each = (time.perf_counter() - start) / len(group)
        for (item, signal), result in zip(group, results):
            model = cast(MLP, result.model).cpu()
            outcomes[item.name] = Outcome(item.name, "ok", model, signal.metadata(), result.steps, each,
                                          dict(result.metrics), batched=result.batched)

    for group in loaded.values():
        try:
            fit_group(group)
        except Exception as exc:
            if len(group) == 1:
                outcomes[group[0][0].name] = Outcome(group[0][0].name, "failed", error=one_line(exc))
                continue
            for member in group:  # find the member that breaks the batch; the others still complete
                try:
                    fit_group([member])
                except Exception as inner:
                    outcomes[member[0].name] = Outcome(member[0].name, "failed", error=one_line(inner))
    return [outcomes[item.name] for item in items]


# ------------------------------------------------------------------ the job
def _fitted(outdir: Path, expected: dict[str, Any]) -> Done:
    """``fit-many``'s resume rule: the item's model exists, loads, and was fitted from the same source with the
    ``expected`` settings (read from its header, so a run without a summary resumes too)."""
    def done(item: Item, row: dict[str, Any] | None) -> Path | None:
        out = model_path(item, outdir)
        if not out.is_file():
            return None
        try:
            _, header = load_model(out)
        except Exception:
            return None
        extra = header.get("extra") or {}
        return out if extra.get("source") == item.source and extra.get("config") == expected else None

    return done


def check_ray() -> None:
    """Refuse ``--ray`` (:class:`InvalidInputError`) when Ray is not installed."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise InvalidInputError("--ray needs Ray: pip install -e '.[ray]' (without --ray the batches run in-process)")


def _batches_in_process(batches: list[list[Item]], run: Callable[[list[Item]], list[Outcome]],
                        on_done: Callable[[list[Item], list[Outcome]], None]) -> None:
    for batch in batches:
        on_done(batch, run(batch))


def _batches_on_ray(batches: list[list[Item]], spec: ModelSpec, config: FitConfig, options: SignalOptions,
                    address: str | None, on_done: Callable[[list[Item], list[Outcome]], None],
                    workers: int | None = None) -> float:
    """Run the batches as Ray tasks (one local Ray started for the call, or the one at ``address``); returns the
    seconds ``ray.init`` took (the start-up, reported apart from the fitting)."""
    import ray

    started = not ray.is_initialized()
    t = time.perf_counter()
    if started:
        ray.init(address=address, num_cpus=workers if address is None else None, include_dashboard=False,
                 ignore_reinit_error=True, log_to_driver=False)
    startup = time.perf_counter() - t
    try:
        task = ray.remote(num_cpus=1)(run_batch)
        spec_ref, config_ref, options_ref = ray.put(spec), ray.put(config), ray.put(options)
        pending = {task.remote(b, spec_ref, config_ref, options_ref): b for b in batches}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                batch = pending.pop(ref)
                try:
                    outcomes = ray.get(ref)
                except Exception as exc:  # a task that died (worker lost, ...): its items fail
                    outcomes = [Outcome(i.name, "failed", error=one_line(exc)) for i in batch]
                on_done(batch, outcomes)
    finally:
        if started:
            ray.shutdown()
    return startup


def run_job(inputs: Sequence[str | os.PathLike], outdir: str | os.PathLike, spec: ModelSpec | None = None,
            config: FitConfig | None = None, options: SignalOptions | None = None,
            job: JobOptions | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Fit one model per signal of ``inputs`` into ``outdir`` (``NAME.safetensors``), in batches.

    Args:
        inputs: signal files, folders, globs or series manifests (see :func:`expand_inputs`).
        outdir: the output folder (created); ``summary.json`` and ``summary.csv`` are written there.
        spec, config, options: the model, fit settings and signal options, as for ``inrkit fit``.
        job: batch size, Ray, redo (:class:`JobOptions`).
        progress: a progress bar on stderr (items done/failed, items/s); default ``config.progress``
            when stderr is a terminal.

    Returns the summary (:mod:`inrkit.runner`; rows with ``psnr``, ``steps``, ``raw_bytes``, ``ratio``; ``run``:
    ``stack``, ``ray``, ``fit_path``; with Ray ``ray_address`` (``None``: a local Ray), ``ray_workers``,
    ``ray_startup_seconds``). Failed items do not raise.
    """
    spec, config = spec or ModelSpec(), config or FitConfig()
    if spec.arch == AUTO:  # stacked fits need one architecture for every signal: a SIREN
        spec = replace(spec, arch="siren")
    options, job = options or SignalOptions(), job or JobOptions()
    items = expand_inputs(inputs)
    if job.ray:
        check_ray()
    out = Path(outdir)
    expected = run_config(spec, config, options)
    show = config.progress if progress is None else progress
    runner = Runner("fit-many", items, out, expected, _fitted(out, expected), redo=job.redo, progress=show,
                    run={"stack": job.batch, "ray": job.ray,
                         **({"ray_address": job.ray_address, "ray_workers": job.ray_workers} if job.ray
                            else {})})
    paths = {"batched": 0, "one_at_a_time": 0}  # fit_many's measured choice (inrkit.train.batched.choose_path)

    def on_done(batch: list[Item], outcomes: list[Outcome]) -> None:
        by_name = {o.name: o for o in outcomes}
        for item in batch:
            outcome = by_name.get(item.name) or Outcome(item.name, "failed", error="no result")
            if outcome.status == "ok" and outcome.model is not None:
                outcome = _save(item, outcome, out, spec, config, expected)
            if outcome.batched is not None:
                paths["batched" if outcome.batched else "one_at_a_time"] += 1
            if outcome.status != "ok":
                runner.record(item, error=outcome.error or "failed", seconds=outcome.seconds)
                continue
            target = model_path(item, out)
            report = size_report(target.stat().st_size, outcome.signal)
            runner.record(item, target, seconds=outcome.seconds, psnr=outcome.metrics.get("psnr"),
                          steps=outcome.steps or None, raw_bytes=report.get("raw_bytes"), ratio=report.get("ratio"))
        runner.save()

    startup: list[float] = []
    try:
        batches = make_batches(runner.todo, job.batch)
        if job.ray:
            startup.append(_batches_on_ray(batches, spec, config, options, job.ray_address, on_done, job.ray_workers))
        else:
            _batches_in_process(batches, lambda b: run_batch(b, spec, config, options), on_done)
    finally:
        summary = runner.close(fit_path=paths, **({"ray_startup_seconds": round(startup[0], 3)} if startup else {}))
    return summary


def _save(item: Item, outcome: Outcome, out: Path, spec: ModelSpec, config: FitConfig,
          expected: dict[str, Any]) -> Outcome:
    """Write a fitted model as ``inrkit fit`` would (atomically); a failed write fails the item."""
    try:
        extra = {"arch": spec.arch, "seed": config.seed, "steps": outcome.steps, "source": item.source,
                 "config": expected}
        save_model(cast(MLP, outcome.model), model_path(item, out), signal=outcome.signal, extra=extra)
    except Exception as exc:
        return replace(outcome, status="failed", error=one_line(exc))
    return outcome


# ------------------------------------------------------------------ per-item jobs (encode --many, mesh --many)

@dataclass
class ManyOptions:
    """The ``--many`` form of a one-file command: one output per input file, into an output folder.

    Args:
        many: INPUT is a folder, a quoted glob or a file and -o names an output folder (one output per input,
            resumable, summary.json/summary.csv there); implied when INPUT is a folder.
        redo: with --many, process every input again, also those whose output exists and validates.
    """

    many: bool = False
    redo: bool = False


def wants_many(source: str | os.PathLike, options: ManyOptions) -> bool:
    """Whether a command runs its ``--many`` form: ``--many`` given or the input is a folder."""
    return bool(options.many or Path(source).is_dir())


def run_each(items: Sequence[Item], outdir: str | os.PathLike, work: Callable[[Item, Path], dict[str, Any]],
             validate: Callable[[Path], None], settings: dict[str, Any], *, command: str, redo: bool = False,
             progress: bool = False) -> dict[str, Any]:
    """Run ``work`` once per item into ``outdir``: resumable, failures isolated, one summary (:mod:`inrkit.runner`).

    Args:
        items: the inputs (:func:`expand_inputs`).
        outdir: the output folder (created); ``summary.json`` and ``summary.csv`` are rewritten after every item.
        work: ``work(item, outdir)`` writes the item's output atomically and returns its row numbers:
            ``output`` (the path written, required), and e.g. ``psnr``, ``bpp``.
        validate: raises for an output that does not load (run on outputs of earlier runs before skipping them).
        settings: the settings of the run (JSON); an item is skipped only when the last run's summary has the
            same command and settings, an ``ok`` row for the same input, and the output it wrote is unchanged
            (SHA-256) and validates; ``redo`` processes everything.
        command: the command's name in the summary (and the bar's label).
        progress: a progress bar on stderr (when it is a terminal).

    Returns the summary. Failed items do not raise.
    """
    runner = Runner(command, items, outdir, settings, unchanged_output(validate), redo=redo, progress=progress)
    try:
        for item in runner.todo:
            t0 = time.perf_counter()
            try:
                numbers = dict(work(item, runner.out))
                target = Path(numbers.pop("output"))
                runner.record(item, target, seconds=time.perf_counter() - t0, **numbers)
            except Exception as exc:  # one bad input: one failed row, the others go on
                runner.record(item, error=one_line(exc), seconds=time.perf_counter() - t0)
            runner.save()  # after every item: an interrupted run resumes from it
    finally:
        summary = runner.close()
    return summary


# ------------------------------------------------------------------ encode --many, mesh --many
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MODEL_SUFFIXES = (".safetensors", ".npz")


def _valid_inrz(path: Path) -> None:
    from inrkit.compress.decode.container import unpack
    from inrkit.compress.decode.decoder import read_file

    unpack(read_file(path))


def _valid_mesh(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip()
    if not head.startswith(b"<"):
        raise InvalidFileError(f"{path}: not a VTK XML file")


def encode_many(inputs: Sequence[str | os.PathLike], outdir: str | os.PathLike, *, config: Any = None,
                redo: bool = False, progress: bool = False, **options: Any) -> dict[str, Any]:
    """``inrkit encode --many``: :func:`inrkit.compress.encode.image.encode_image` of every image of ``inputs`` (files,
    folders, globs) into ``outdir/NAME.inrz``, resumable, with ``summary.json``/``summary.csv`` (psnr, bytes, bpp,
    seconds per image). ``config`` and ``options`` as for ``encode_image``."""
    from inrkit.compress.encode.api import EncodeConfig
    from inrkit.compress.encode.image import encode_image

    config = config or EncodeConfig()
    items = expand_inputs(inputs, IMAGE_SUFFIXES, "image")
    settings = {"command": "encode", "options": options,
                "config": {k: v for k, v in asdict(config).items() if k not in ("progress", "device")}}

    def work(item: Item, out: Path) -> dict[str, Any]:
        rep = encode_image(item.source, out / f"{item.name}.inrz", config=replace(config, progress=False), **options)
        return {"output": rep["output"], "psnr": rep.get("psnr"), "bpp": rep.get("bpp"),
                "fit_psnr": rep.get("fit_psnr"), "hidden": "x".join(str(h) for h in rep.get("hidden", []))}

    return run_each(items, outdir, work, _valid_inrz, settings, command="encode", redo=redo, progress=progress)


def mesh_many(inputs: Sequence[str | os.PathLike], outdir: str | os.PathLike, *, config: Any = None,
              mesh: Any = None, redo: bool = False, progress: bool = False,
              device: str | None = "cpu") -> dict[str, Any]:
    """``inrkit mesh --many``: :func:`inrkit.amr.api.mesh_model` of every model of ``inputs`` (files, folders,
    globs) into ``outdir/NAME.vtu`` (``NAME.pvd`` for a 4D model), resumable, with ``summary.json``/``summary.csv``
    (dofs, elements, rmse, DOF change against uniform refinement, seconds per model). ``config``
    (:class:`~inrkit.amr.PruningAMRConfig`) and ``mesh`` (:class:`~inrkit.amr.MeshConfig`, no preview) as for
    ``mesh_model``."""
    from inrkit.amr.api import mesh_model
    from inrkit.amr.mesher import MeshConfig
    from inrkit.amr.pruning import PruningAMRConfig

    config = config or PruningAMRConfig()
    how = mesh or MeshConfig()
    if how.preview is not None:
        raise InvalidInputError("--preview names one file; it cannot be used with --many")
    items = expand_inputs(inputs, MODEL_SUFFIXES, "model")
    settings = {"command": "mesh", "options": asdict(how),
                "config": {k: v for k, v in asdict(config).items() if k != "progress"}}

    def work(item: Item, out: Path) -> dict[str, Any]:
        model, _ = load_model(item.source)
        suffix = ".pvd" if int(getattr(model, "coord_dim", 0)) == 4 else ".vtu"
        rep = mesh_model(item.source, out / f"{item.name}{suffix}", config=replace(config, progress=False),
                         mesh=how, device=device)
        return {"output": rep["output"], "dofs": rep.get("dofs"), "elements": rep.get("elements"),
                "rmse": rep.get("rmse"),
                "dof_change_vs_uniform": (rep.get("uniform_comparison") or {}).get("dof_change")}

    return run_each(items, outdir, work, _valid_mesh, settings, command="mesh", redo=redo, progress=progress)
