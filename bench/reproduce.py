"""Reproduce a paper's table: read ``bench/protocols/METHOD.toml`` and run the method's benchmark with it.

    .venv/bin/python bench/reproduce.py aire|sinr|meta|amr|nerf [--protocol paper|cpu] [--full] [--dry-run]

Every value of a protocol carries its ``source`` (paper section/table or the authors' code) and how the
benchmark takes it (``apply``): ``flag:--x`` (a command-line flag), ``each:--x`` (one run per listed value,
e.g. seeds; ``each:--x,--y`` with a list of pairs: one run per pair, e.g. SINR's (depth, width)),
``settings:NAME`` (a field of the benchmark's ``Settings`` dataclass, set here), ``config:NAME`` (checked equal
to the library default the benchmark uses) or ``none: why`` (the benchmark cannot take it yet). Values it
cannot take are listed under ``not_applied`` in every output, never dropped silently. Values with
``full_only = true`` (paper scale) apply only with ``--full`` (a GPU).

``--dry-run`` prints the resolved configuration (values, sources, the benchmark command lines) and checks that
the benchmark's own argument parser accepts them, without running anything. Otherwise every run writes its
benchmark JSON under ``bench/results/reproduce/`` and this script writes ``METHOD_PROTOCOL[_full].json`` and
``.md`` there: the paper's numbers beside inrkit's (mean and spread over the runs). See docs/protocols.md.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import inspect
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ROOT / "bench" / "protocols"
RESULTS = ROOT / "bench" / "results" / "reproduce"
METHODS = ("aire", "sinr", "meta", "amr", "nerf")
APPLY_KINDS = ("flag", "each", "settings", "config", "none")


class ProtocolError(ValueError):
    """A protocol file that is incomplete or that its benchmark does not accept."""


# ------------------------------------------------------------------ protocol files
def load_protocol(method: str, folder: Path = PROTOCOLS) -> dict[str, Any]:
    """``folder/METHOD.toml``, checked: every value has ``value``, a non-empty ``source`` and a known ``apply``."""
    if method not in METHODS:
        raise ProtocolError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    path = folder / f"{method}.toml"
    data = tomllib.loads(path.read_text())
    for key in ("method", "bench", "out", "protocol"):
        if key not in data:
            raise ProtocolError(f"{path}: missing {key!r}")
    for name, proto in data["protocol"].items():
        for key in ("description", "gpu_hours", "gpu_hours_source", "values"):
            if key not in proto:
                raise ProtocolError(f"{path}: protocol {name!r} lacks {key!r}")
        for vname, entry in proto["values"].items():
            where = f"{path}: protocol {name!r} value {vname!r}"
            if not isinstance(entry, dict) or "value" not in entry:
                raise ProtocolError(f"{where}: needs a table with value, source and apply")
            if not str(entry.get("source", "")).strip():
                raise ProtocolError(f"{where}: no source")
            kind, _, target = str(entry.get("apply", "")).partition(":")
            if kind not in APPLY_KINDS:
                raise ProtocolError(f"{where}: apply must start with one of {APPLY_KINDS}, got {entry.get('apply')!r}")
            n_flags = len(target.split(","))
            if kind == "each" and n_flags > 1 and not all(
                    isinstance(v, list) and len(v) == n_flags for v in _as_list(entry["value"])):
                raise ProtocolError(f"{where}: {entry['apply']!r} needs a list of {n_flags}-value lists")
    for cname, entry in data.get("paper_numbers", {}).items():
        if "value" not in entry or not str(entry.get("source", "")).strip():
            raise ProtocolError(f"{path}: paper number {cname!r} needs a value and a source")
    return data


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _flag_args(flag: str, value: Any) -> list[str]:
    if value is True:
        return [flag]
    if value is False:
        return []
    if isinstance(value, list):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, str(value)]


def resolve(method: str, protocol: str = "cpu", full: bool = False, folder: Path = PROTOCOLS) -> dict[str, Any]:
    """The plan of one reproduction: values with sources, the benchmark's command lines (one per run),
    ``Settings`` overrides, library defaults to check, and the values not applied (with the reason)."""
    data = load_protocol(method, folder)
    if protocol not in data["protocol"]:
        raise ProtocolError(f"{method}: no protocol {protocol!r} (have {', '.join(data['protocol'])})")
    if full and protocol != "paper":
        raise ProtocolError("--full is the paper scale: use --protocol paper --full")
    proto = data["protocol"][protocol]
    flags: list[str] = []
    each: list[tuple[list[str], list[Any]]] = []
    settings: dict[str, Any] = {}
    config: dict[str, Any] = {}
    not_applied: list[dict[str, Any]] = []
    for name, entry in proto["values"].items():
        kind, _, target = str(entry["apply"]).partition(":")
        value = entry["value"]
        if entry.get("full_only") and not full or (name == "full" and not full):
            not_applied.append({"name": name, "value": value, "source": entry["source"],
                                "reason": "paper scale: applied only with --full (a GPU)"})
            continue
        if kind == "flag":
            flags += _flag_args(target.strip(), value)
        elif kind == "each":
            each.append(([f.strip() for f in target.split(",")], _as_list(value)))
        elif kind == "settings":
            settings[target.strip()] = value
        elif kind == "config":
            config[target.strip()] = value
        else:
            not_applied.append({"name": name, "value": value, "source": entry["source"], "reason": target.strip()})
    runs = []
    for combo in itertools.product(*[[(names, v) for v in values] for names, values in each]) if each else [()]:
        argv = list(flags)
        for names, v in combo:  # one flag, or a tuple of flags (each:--x,--y) taking one value each
            for flag, x in zip(names, v) if len(names) > 1 else [(names[0], v)]:
                argv += _flag_args(flag, x)
        runs.append(argv)
    return {"method": method, "protocol": protocol, "full": full, "bench": data["bench"], "out": data["out"],
            "paper": data.get("paper", ""), "description": proto["description"],
            "gpu_hours": proto["gpu_hours"], "gpu_hours_source": proto["gpu_hours_source"],
            "values": {k: {"value": v["value"], "source": v["source"], "apply": v["apply"]}
                       for k, v in proto["values"].items()},
            "runs": runs, "settings": settings, "config": config, "not_applied": not_applied,
            "paper_numbers": data.get("paper_numbers", {})}


# ------------------------------------------------------------------ the benchmark module
def load_bench(script: str) -> ModuleType:
    """Import a benchmark script as a module (its ``__main__`` block does not run)."""
    path = ROOT / script
    spec = importlib.util.spec_from_file_location(f"inrkit_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ProtocolError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _patched(module: ModuleType, plan: dict[str, Any], argv: list[str]) -> Iterator[None]:
    """``sys.argv`` for the benchmark and its ``Settings`` with the plan's overrides."""
    old_argv, old_settings = sys.argv, getattr(module, "Settings", None)
    sys.argv = [str(ROOT / plan["bench"]), *argv]
    if plan["settings"]:
        base = old_settings
        if base is None or not dataclasses.is_dataclass(base):
            raise ProtocolError(f"{plan['bench']} has no Settings dataclass for {sorted(plan['settings'])}")
        names = {f.name for f in dataclasses.fields(base)}
        unknown = sorted(set(plan["settings"]) - names)
        if unknown:
            raise ProtocolError(f"{plan['bench']} Settings has no field(s) {unknown}")

        make: Any = base

        def settings(*args: Any, **kwargs: Any) -> Any:
            return dataclasses.replace(make(*args, **kwargs), **plan["settings"])

        module.Settings = settings  # type: ignore[attr-defined]
    try:
        yield
    finally:
        sys.argv = old_argv
        if old_settings is not None:
            module.Settings = old_settings  # type: ignore[attr-defined]


def _call_main(module: ModuleType, argv: list[str]) -> Any:
    main = module.main
    return main(argv) if inspect.signature(main).parameters else main()


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__("parsed")
        self.namespace = namespace


def check_accepted(plan: dict[str, Any], module: ModuleType | None = None) -> list[dict[str, Any]]:
    """Parse every run's command line with the benchmark's own parser (nothing runs) and check the library
    defaults (``config:``); returns the parsed arguments per run. Raises :class:`ProtocolError` if refused."""
    module = module or load_bench(plan["bench"])
    if plan["config"]:
        from inrkit.amr.pruning import PruningAMRConfig

        default = PruningAMRConfig()
        for name, value in plan["config"].items():
            if getattr(default, name, object()) != value:
                raise ProtocolError(f"{plan['method']}: PruningAMRConfig().{name} is "
                                    f"{getattr(default, name, None)!r}, the protocol says {value!r}")
    original = argparse.ArgumentParser.parse_args
    parsed = []

    def parse(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> argparse.Namespace:
        try:
            ns = original(self, args, namespace)
        except SystemExit as exc:
            raise ProtocolError(f"{plan['bench']} refuses {sys.argv[1:]}") from exc
        raise _Parsed(ns)

    for argv in plan["runs"]:
        argparse.ArgumentParser.parse_args = parse  # type: ignore[method-assign,assignment]
        try:
            with _patched(module, plan, [*argv, *_out_args(plan, 0, Path("/nonexistent"))]):
                _call_main(module, [*argv, *_out_args(plan, 0, Path("/nonexistent"))])
            raise ProtocolError(f"{plan['bench']}: main() returned without parsing its arguments")
        except _Parsed as done:
            parsed.append({k: v for k, v in vars(done.namespace).items()})
        finally:
            argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    return parsed


# ------------------------------------------------------------------ running and reporting
def _tag(plan: dict[str, Any]) -> str:
    return f"{plan['method']}_{plan['protocol']}" + ("_full" if plan["full"] else "")


def _out_args(plan: dict[str, Any], i: int, folder: Path) -> list[str]:
    target = folder / f"{_tag(plan)}_run{i}"
    return ["--out", str(target if plan["out"] == "folder" else target.with_suffix(".json"))]


def _result_json(plan: dict[str, Any], i: int, folder: Path) -> dict[str, Any] | None:
    target = folder / f"{_tag(plan)}_run{i}"
    if plan["out"] == "folder":
        found = sorted(target.glob("*.json"), key=lambda p: p.stat().st_mtime)
        target = found[-1] if found else target / "missing.json"
    else:
        target = target.with_suffix(".json")
    return json.loads(target.read_text()) if target.is_file() else None


def _lookup(data: Any, path: str) -> float | None:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return float(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def table(plan: dict[str, Any], results: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """One row per paper number: the paper's value, inrkit's mean and spread over the runs (where measured)."""
    rows = []
    for name, entry in plan["paper_numbers"].items():
        values = [v for r in results if r is not None and "path" in entry
                  for v in [_lookup(r, entry["path"])] if v is not None]
        rows.append({"claim": name, "paper": entry["value"], "source": entry["source"],
                     "inrkit_mean": statistics.fmean(values) if values else None,
                     "inrkit_spread": statistics.stdev(values) if len(values) > 1 else None,
                     "runs": len(values),
                     "status": "measured" if values else ("not reported by the benchmark" if "path" not in entry
                                                          else "not measured (no result)")})
    return rows


def markdown(plan: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The Markdown table written beside the JSON."""
    lines = [f"# {plan['method']}: protocol {plan['protocol']}{' (--full)' if plan['full'] else ''}", "",
             plan["description"], "", "| claim | paper | inrkit (mean +- spread, runs) | status | source |",
             "|---|---|---|---|---|"]
    for r in rows:
        ours = "-" if r["inrkit_mean"] is None else (
            f"{r['inrkit_mean']:.4g}" + (f" +- {r['inrkit_spread']:.2g}" if r["inrkit_spread"] is not None else "")
            + f" ({r['runs']})")
        lines.append(f"| {r['claim']} | {r['paper']} | {ours} | {r['status']} | {r['source']} |")
    if plan["not_applied"]:
        lines += ["", "Not applied (the benchmark cannot take these yet, or they need --full):", ""]
        lines += [f"- `{n['name']}` = {n['value']}: {n['reason']} (source: {n['source']})" for n in plan["not_applied"]]
    return "\n".join(lines) + "\n"


def run(plan: dict[str, Any], folder: Path = RESULTS) -> dict[str, Any]:
    """Run every command line of ``plan`` through the benchmark and write the JSON + Markdown table."""
    folder.mkdir(parents=True, exist_ok=True)
    module = load_bench(plan["bench"])
    start, results = time.perf_counter(), []
    for i, argv in enumerate(plan["runs"]):
        full_argv = [*argv, *_out_args(plan, i, folder)]
        print(f"[reproduce] {plan['bench']} {' '.join(full_argv)}", file=sys.stderr)
        with _patched(module, plan, full_argv):
            _call_main(module, full_argv)
        results.append(_result_json(plan, i, folder))
    rows = table(plan, results)
    report = {"benchmark": "reproduce", **{k: v for k, v in plan.items() if k != "paper_numbers"},
              "table": rows, "seconds": round(time.perf_counter() - start, 1)}
    (folder / f"{_tag(plan)}.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / f"{_tag(plan)}.md").write_text(markdown(plan, rows))
    return report


def protocols_markdown(folder: Path = PROTOCOLS) -> str:
    """The "protocols" section of docs/protocols.md, generated from the TOML files (``--docs`` prints it)."""
    out: list[str] = []
    for method in METHODS:
        data = load_protocol(method, folder)
        out += [f"### {method}: `{data['bench']}`", ""]
        for name, proto in data["protocol"].items():
            hours = f"GPU hours: {proto['gpu_hours']} ({proto['gpu_hours_source']})"
            out += [f"**{name}**: {proto['description']}. {hours}.",
                    "", "| value | | applied as | source |", "|---|---|---|---|"]
            for vname, entry in proto["values"].items():
                apply = entry.get("apply", "") + (" (only with --full)" if entry.get("full_only") else "")
                out.append(f"| `{vname}` | {entry['value']} | {apply} | {entry['source']} |")
            out.append("")
        numbers = "; ".join(f"`{k}` = {v['value']} ({v['source']})" for k, v in data.get("paper_numbers", {}).items())
        if numbers:
            out += [f"Paper numbers (the table's left column): {numbers}.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("method", choices=METHODS, nargs="?")
    p.add_argument("--protocol", choices=("paper", "cpu"), default="cpu",
                   help="paper: the paper's values (bench/protocols/METHOD.toml); cpu: the scaled-down protocol")
    p.add_argument("--full", action="store_true", help="paper scale (GPU); only with --protocol paper")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and check that the "
                   "benchmark accepts it; run nothing")
    p.add_argument("--out", default=str(RESULTS), help="folder of the results (default bench/results/reproduce)")
    p.add_argument("--docs", action="store_true", help="print docs/protocols.md's generated section (all methods)")
    a = p.parse_args(argv)
    if a.docs:
        print(protocols_markdown())
        return 0
    if a.method is None:
        p.error(f"name a method ({', '.join(METHODS)}), or pass --docs")
    try:
        plan = resolve(a.method, a.protocol, a.full)
        if a.dry_run:
            check_accepted(plan)
            shown = {k: v for k, v in plan.items()}
            shown["commands"] = [" ".join([".venv/bin/python", plan["bench"], *r]) for r in plan["runs"]]
            shown["accepted_by_bench"] = True
            print(json.dumps(shown, indent=2))
            return 0
        run(plan, Path(a.out))
    except ProtocolError as exc:
        print(f"reproduce: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
