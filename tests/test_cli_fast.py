"""The command answers at once and each flag has one meaning.

``--help``, ``--version`` and usage errors come from the light parser (``inrkit/cli/parser.json``,
:mod:`inrkit.cli.spec`) without importing torch; ``parser.json`` equals the full parser's description;
Ctrl-C is one line and exit 130; misspelt flags, choices and commands get a suggestion; renamed flags
keep their old spelling.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_commands import leaf_commands

from inrkit.cli import build_parser, main
from inrkit.cli.spec import SPEC_PATH, describe, light_parser, load

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
HELP_CPU_S = 1.5  # CPU seconds of `inrkit --help` (about 0.07 s unloaded; the machine is shared)


def _python(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env or ENV,
                          timeout=timeout)


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(path, parser)`` of the parser and every (sub)command below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


# ------------------------------------------------------------------ parser.json
def test_parser_json_is_current() -> None:
    """parser.json equals the description of the full parser, generated in a fresh process (registries as
    shipped) under other thread settings (the description holds nothing of this machine)."""
    env = {**ENV, "OMP_NUM_THREADS": "3", "INRKIT_THREADS": "2", "COLUMNS": "57"}
    proc = _python("import sys; from inrkit.cli.spec import dumps, full_spec; sys.stdout.write(dumps(full_spec()))",
                   env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SPEC_PATH.read_text(encoding="utf-8"), (
        "src/inrkit/cli/parser.json is stale: regenerate it with `python -m inrkit.cli.spec`")


def test_light_parser_rebuilds_the_full_one() -> None:
    """Same description, same --help and usage text for every command."""
    full, light = build_parser(), light_parser()
    assert light is not None
    assert describe(light) == load()["parser"]
    light_parsers = dict(_parsers(light))
    for path, parser in _parsers(full):
        assert light_parsers[path].format_help() == parser.format_help(), path


BAD_ARGVS = [
    ["fit", "x.png", "--arhc", "grid"],
    ["fit", "x.png", "-o", "y.safetensors", "--arch", "gird"],
    ["fit", "x.png", "-o", "y.safetensors", "--hiden", "64x3"],
    ["fit", "x.png", "--outptu", "y.safetensors"],
    ["fitt", "x.png"],
    ["fit", "x.png", "-o", "y.safetensors", "--lr", "-1e-3"],
    ["fit", "x.png", "-o", "y.safetensors", "--steps", "nan"],
    ["fit", "x.png", "-o", "y.safetensors", "--threads", "0"],
    ["fit-many", "a", "-o", "b", "--stack", "0"],
    ["encode", "x.png", "-o", "y.inrz", "--bpp", "1", "--target-psnr", "30"],
    ["synth"],
    ["synth", "vortx", "-o", "s"],
    [],
]


@pytest.mark.parametrize("argv", BAD_ARGVS, ids=lambda a: " ".join(a) or "nothing")
def test_light_and_full_parser_refuse_alike(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    results = []
    for parser in (light_parser(), build_parser()):
        assert parser is not None
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        results.append((exc.value.code, capsys.readouterr().err))
    assert results[0] == results[1]
    code, err = results[0]
    assert code == 2 and err.count("\n") == 1 and err.startswith("inrkit")


def test_light_parser_accepts_what_the_full_one_accepts() -> None:
    argv = ["fit", "x.png", "-o", "y.safetensors", "--arch", "grid", "--hidden", "64x2", "--lr", "1e-2",
            "--iters", "5", "--batch", "64", "--threads", "1", "--no-progress", "--json"]
    light = light_parser()
    assert light is not None
    assert vars(light.parse_args(argv))["steps"] == vars(build_parser().parse_args(argv))["steps"] == 5


# ------------------------------------------------------------------ speed, no torch
QUICK_ARGVS = [
    (["--help"], 0), (["fit", "--help"], 0), (["--version"], 0), (["synth", "vortex", "--help"], 0),
    (["fit", "x.png", "--arhc", "grid"], 2), (["fit", "x.png", "-o", "y.safetensors", "--arch", "gird"], 2),
    (["fit-many", "a", "-o", "b", "--stack", "0"], 2), (["nope"], 2), ([], 2),
]


def test_quick_answers_import_no_torch() -> None:
    """main() answers --help, --version and usage errors with torch, NumPy and the commands unimported."""
    code = ("import sys; from inrkit.cli import main; codes = []\n"
            f"for argv, _ in {QUICK_ARGVS!r}:\n"
            "    codes.append(main(argv))\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'scipy')"
            " or m in ('inrkit.cli.core', 'inrkit.utils'))\n"
            "print(codes, heavy)")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"{[c for _, c in QUICK_ARGVS]} []"


def test_import_is_light() -> None:
    proc = _python("import sys, inrkit, inrkit.cli; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["fit", "--help"], ["--version"], ["fit", "x.png", "--arhc", "grid"]],
                         ids=" ".join)
def test_quick_answers_cpu_time(argv: list[str]) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "inrkit", *argv], capture_output=True, text=True, env=ENV,
                          timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr
    assert cpu < HELP_CPU_S, f"inrkit {' '.join(argv)}: {cpu:.2f} s of CPU"


def test_threads_help_names_no_core_count() -> None:
    text = _leaf("fit")._option_string_actions["--threads"].help or ""
    assert "else min(cores, 8); range [1, " in text and "here" not in text


# ------------------------------------------------------------------ Ctrl-C
def _loaded(pid: int, library: str) -> bool:
    """``library`` is mapped into process ``pid`` (Linux)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _interrupt_once_loaded(argv: list[str], library: str) -> tuple[int, str]:
    """Run ``python -m inrkit ARGV``, send SIGINT as soon as ``library`` is loaded: (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "inrkit", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    deadline = time.monotonic() + 60
    while not _loaded(proc.pid, library) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the imports")
def test_ctrl_c_during_the_imports(tmp_path: Path) -> None:
    """SIGINT while torch is being imported (after parsing): one line on stderr, exit 130."""
    argv = ["fit", "analytic:sin-radial", "-o", str(tmp_path / "m.safetensors"), "--steps", "5", "--no-progress"]
    assert _interrupt_once_loaded(argv, "libtorch") == (130, "inrkit: interrupted\n")
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.skipif(not Path("/proc/self/maps").exists() or "_json" in sys.builtin_module_names,
                    reason="needs /proc and a shared _json module (json is first imported by inrkit's own imports)")
@pytest.mark.parametrize("argv", [["fit", "analytic:sin-radial", "-o", "x.safetensors"], ["--help"]], ids=" ".join)
def test_ctrl_c_right_after_start(argv: list[str], tmp_path: Path) -> None:
    """SIGINT while the inrkit package itself is imported or parses: one line, exit 130 (``--help`` may finish
    first, exit 0)."""
    code, err = _interrupt_once_loaded(argv, "_json.")
    assert (code, err) == (130, "inrkit: interrupted\n") or (argv == ["--help"] and (code, err) == (0, "")), err


def test_ctrl_c_during_a_fit(tmp_path: Path) -> None:
    """SIGINT while the fit runs (after its duration estimate): the fit stops, one more line, exit 130."""
    proc = subprocess.Popen([sys.executable, "-m", "inrkit", "fit", "analytic:sin-radial", "-o",
                             str(tmp_path / "m.safetensors"), "--steps", "1000000", "--hidden", "32x2",
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the estimate: "inrkit: warning: this fit will take about ..."
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    assert first.startswith("inrkit: warning:") and "fit will take" in first, first
    assert (proc.returncode, rest) == (130, "inrkit: interrupted\n")
    assert not (tmp_path / "m.safetensors").exists()


# ------------------------------------------------------------------ suggestions
SUGGESTIONS = [
    (["fit", "x.png", "-o", "y.safetensors", "--hiden", "64x3"], "did you mean --hidden?"),
    (["fit", "x.png", "-o", "y.safetensors", "--arch", "gird"], "did you mean grid?"),
    (["fit", "x.png", "--outptu", "y.safetensors"], "did you mean --output?"),
    (["fitt", "x.png"], "did you mean fit?"),
    (["synth", "grayscot", "-o", "s"], "did you mean grayscott?"),
    (["prune", "m", "-o", "p", "--method", "corset"], "did you mean coreset?"),
]


@pytest.mark.parametrize("light", [True, False], ids=["light", "full"])
@pytest.mark.parametrize("argv, hint", SUGGESTIONS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_suggestions(argv: list[str], hint: str, light: bool, capsys: pytest.CaptureFixture[str]) -> None:
    parser = light_parser() if light else build_parser()
    assert parser is not None
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and hint in err and err.count("\n") == 1, err


def test_no_suggestion_for_a_far_miss(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "x.png", "-o", "y.safetensors", "--zzzzzz", "1"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


# ------------------------------------------------------------------ one meaning per flag
def _leaf(name: str) -> argparse.ArgumentParser:
    return dict(leaf_commands())[(name,)]


def test_fit_many_stack_and_its_deprecated_alias(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _leaf("fit-many")
    new = parser.parse_args(["a", "-o", "b", "--stack", "3"])
    assert capsys.readouterr().err == ""
    old = parser.parse_args(["a", "-o", "b", "--batch", "3"])
    err = capsys.readouterr().err
    assert new.batch == old.batch == 3
    assert err.count("\n") == 1 and err.startswith("inrkit: warning: --batch is deprecated in fit-many, use --stack")
    assert parser.parse_args(["a", "-o", "b", "--batch-size", "64"]).batch_size == 64


def test_batch_means_points_per_step_elsewhere() -> None:
    """Outside fit-many, --batch is always an alias of --batch-size."""
    for path, parser in leaf_commands():
        action = parser._option_string_actions.get("--batch")
        if action is not None and path != ("fit-many",):
            assert "--batch-size" in action.option_strings, path


def test_signal_flag_across_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """--signal names the signal to compare against in prune, compress, decode and eval (old spellings kept)."""
    for name in ("prune", "compress", "decode", "eval"):
        assert "--signal" in _leaf(name)._option_string_actions, name
    decode = _leaf("decode")
    a = decode.parse_args(["f.inrz", "-o", "o.png", "--signal", "r.png"])
    b = decode.parse_args(["f.inrz", "-o", "o.png", "--reference", "r.png"])
    assert a.reference == b.reference == "r.png"
    assert main(["eval", "m.safetensors"]) == 2 and "--signal" in capsys.readouterr().err
    assert main(["eval", "m.safetensors", "a.png", "--signal", "b.png"]) == 2
    assert "once" in capsys.readouterr().err


def test_one_help_text_per_flag() -> None:
    """No two arguments of a command share one help text."""
    for path, parser in leaf_commands():
        texts = collections.defaultdict(list)
        for action in parser._actions:
            if action.help:
                texts[re.sub(r"\s*\(default:.*\)$", "", action.help)].append(action.dest)
        assert not [(t, d) for t, d in texts.items() if len(d) > 1], path
