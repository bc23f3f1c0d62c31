"""bench/doc_commands.py: its command list is in sync with README.md and docs/*.md, and every
recorded command that takes a minute or more carries a time label in the docs."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module() -> ModuleType:
    import doc_commands  # bench/doc_commands.py (pytest puts bench/ on the path: pyproject's pythonpath)

    return doc_commands


dc = _module()


def _results() -> list[dict]:
    path = dc.RESULTS
    if not path.exists():
        pytest.fail(f"{path} missing: run bench/doc_commands.py")
    return json.loads(path.read_text())["results"]


def test_extract_reads_fenced_shell_blocks(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "text `inrkit fit x` inline is not a command\n"
        "```bash\n"
        "inrkit fit a.png -o m.safetensors \\\n"
        "    --steps 5   # 2 min\n"
        "# a comment line\n"
        "for a in 1 2; do inrkit synth sin-radial -o f$a.npy; done\n"
        "inrkit mesh MODEL -o OUT.vtu [--json]\n"
        "```\n"
        "```python\n"
        "inrkit_not_shell = 1\n"
        "```\n"
        "```\n"
        "src/ tree listing\n"
        "inrkit info m.safetensors\n"
        "```\n"
    )
    cmds = dc.extract(tmp_path, ["a.md"])
    assert [c.text for c in cmds] == [
        "inrkit fit a.png -o m.safetensors --steps 5",
        "for a in 1 2; do inrkit synth sin-radial -o f$a.npy; done",
        "inrkit mesh MODEL -o OUT.vtu [--json]",
        "inrkit info m.safetensors",
    ]
    assert cmds[0].line == 3 and cmds[0].comment == "2 min" and dc.TIME_LABEL.search(cmds[0].comment)
    assert [c.synopsis for c in cmds] == [False, False, True, False]
    assert dc.runnable(cmds[1]) == "for a in 1 2; do inrkit synth sin-radial --threads 1 -o f$a.npy; done"
    assert dc.runnable(cmds[0]).startswith("inrkit fit --threads 1 a.png")


def test_every_doc_command_is_recorded() -> None:
    """Every fenced command of the docs has an entry (rerun `bench/doc_commands.py --only DOC` after an edit)."""
    recorded = {(e["file"], e["command"]) for e in _results()}
    missing = [f"{c.file}:{c.line}: {c.text}" for c in dc.extract() if (c.file, c.text) not in recorded]
    assert not missing, "not timed (run bench/doc_commands.py --only DOC):\n" + "\n".join(missing)


def test_recorded_runs_succeeded() -> None:
    """No recorded failure (a run stopped at the script's --timeout is a lower bound, labelled in the docs)."""
    bad = [f"{e['file']}:{e['line']}: {e['command']} ({e['status']})" for e in _results() if e["status"] == "failed"]
    assert not bad, "\n".join(bad)


def test_long_commands_are_labelled_with_their_time() -> None:
    """A command that took >= 60 s (or was not run for its length) says how long it takes on its line."""
    comments = {(c.file, c.text): c.comment for c in dc.extract()}
    unlabelled = []
    for e in _results():
        key = (e["file"], e["command"])
        if e.get("needs_label") and key in comments and not dc.TIME_LABEL.search(comments[key]):
            unlabelled.append(f"{e['file']}:{e['line']}: {e['command']} ({e['seconds']} s)")
    assert not unlabelled, "add a time label (e.g. '# 3 min, 1 thread'):\n" + "\n".join(unlabelled)


def test_doc_inputs_come_from_inrkit_sample() -> None:
    """A fresh clone runs every documented command: no command reads from outside its folder, every
    ``inrkit sample NAME -o PATH`` names a sample and a path it accepts, and a command that reads a sample
    file (kodim23.png, hydrogen.vti, bunny.ply, ...) comes after the ``inrkit sample`` line that writes it."""
    import shlex

    from inrkit.samples import SAMPLES, check_sample_output

    files = {s.filename for s in SAMPLES.values() if not s.folder}
    bad: list[str] = []
    written: dict[str, set[str]] = {}
    for cmd in dc.extract():
        if cmd.synopsis:
            continue
        where = f"{cmd.file}:{cmd.line}: {cmd.text}"
        if "shared/data" in cmd.text or "../" in cmd.text:
            bad.append(f"{where}: reads outside its folder")
        done = written.setdefault(cmd.file, set())
        for part in cmd.text.split("&&"):
            try:
                words = shlex.split(part)
            except ValueError:  # quotes across an `&&` (python -c "...")
                words = part.split()
            outputs = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-o", "--output")}
            if words[:2] == ["inrkit", "sample"]:
                name = words[2]
                if name not in SAMPLES:
                    bad.append(f"{where}: no sample {name!r}")
                for out in outputs:
                    try:
                        check_sample_output(name, out) if name in SAMPLES else None
                    except ValueError as exc:
                        bad.append(f"{where}: {exc}")
            else:
                for word in words:
                    if Path(word).name in files and word not in outputs and word not in done:
                        bad.append(f"{where}: reads {word}, which no earlier `inrkit sample` line writes")
            done |= outputs
    assert not bad, "\n".join(bad)
