"""bench/protocols/*.toml and bench/reproduce.py: the paper values match their cited sources, every value has
a source, every benchmark's own parser accepts the resolved command lines (``--dry-run``), and a run writes the
JSON + Markdown table beside the paper's numbers (with a stand-in benchmark: the real ones are not run here)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import reproduce  # bench/reproduce.py (pytest puts bench/ on the path: pyproject's pythonpath)

ROOT = Path(__file__).resolve().parents[1]


def _values(method: str, protocol: str = "paper") -> dict:
    data = reproduce.load_protocol(method)
    return {k: v["value"] for k, v in data["protocol"][protocol]["values"].items()}


def test_paper_values_are_the_cited_ones() -> None:
    """The paper values equal the numbers their sources (paper section/table, the authors' code) give."""
    aire = _values("aire")
    assert aire["start_hidden"] == [512, 512, 512] and aire["final_hidden"] == [256, 512, 512]
    assert aire["start_hidden"][0] + aire["densify"] - aire["prune_aire"] == aire["final_hidden"][0]
    assert aire["test_fraction"] == 0.1 and aire["batch_size"] == 65536 and aire["lr"] == 1e-4
    meta = _values("meta")
    assert (meta["lr"], meta["inner_lr"], meta["outer_lr"], meta["outer_steps"]) == (1e-5, 1e-4, 1e-4, 500)
    assert (meta["scratch_epochs"], meta["finetune_epochs"], meta["batch_size"]) == (100, 16, 50000)
    assert meta["inner_adam_across_tasks"] is True and set(meta["kind"]) == {"vortex", "grayscott"}
    nerf = _values("nerf")
    assert nerf["param_target"] == 0.48 and nerf["iters"] == 100000 and nerf["width"] == 256
    assert nerf["seed"] == [0, 1, 2]
    sinr = _values("sinr")
    assert sinr["configs"] == [[2, 32], [3, 128]]
    numbers = reproduce.load_protocol("aire")["paper_numbers"]
    assert [numbers[k]["value"] for k in ("table4_small_db", "table4_prune_db", "table4_densify_prune_db")] == [
        36.44, 37.58, 39.47]
    assert reproduce.load_protocol("meta")["paper_numbers"]["speedup_max"]["value"] == 5.87


def test_nerf_widths_give_the_48_percent_target() -> None:
    from inrkit.models.nerf_mlp import NeRFConfig, NeRFMLP

    for protocol in ("paper", "cpu"):
        v = _values("nerf", protocol)
        full = NeRFMLP(NeRFConfig.sized(v["width"], 8)).num_params()
        pruned = NeRFMLP(NeRFConfig.sized(v["widths"][0], 8)).num_params()
        assert abs(pruned / full - v["param_target"]) < 0.005


def test_amr_values_are_the_library_defaults() -> None:
    from inrkit.amr.pruning import PruningAMRConfig

    for name, value in _values("amr").items():
        if name == "full":
            continue
        assert getattr(PruningAMRConfig(), name) == value, name


@pytest.mark.parametrize("method", reproduce.METHODS)
def test_each_bench_accepts_its_protocols(method: str) -> None:
    module = reproduce.load_bench(reproduce.load_protocol(method)["bench"])
    for protocol, full in (("cpu", False), ("paper", False), ("paper", True)):
        plan = reproduce.resolve(method, protocol, full)
        parsed = reproduce.check_accepted(plan, module)
        assert len(parsed) == len(plan["runs"]) >= 1
        for entry in plan["values"].values():
            assert entry["source"].strip()
        if full:
            assert parsed[0].get("full") is True
        skipped = {n["name"] for n in plan["not_applied"]}
        if full:  # at paper scale only the values the benchmark cannot take are left out
            assert skipped == {name for name, e in plan["values"].items() if e["apply"].startswith("none")}


def test_dry_run_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    assert reproduce.main(["nerf", "--protocol", "paper", "--full", "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["commands"]) == 3 and "--widths 175" in shown["commands"][0]
    assert shown["accepted_by_bench"] is True
    assert reproduce.main(["aire", "--protocol", "cpu", "--full", "--dry-run"]) == 2
    assert "--full" in capsys.readouterr().err


def test_each_pair_gives_one_run_per_configuration(tmp_path: Path) -> None:
    """``each:--depth,--widths``: one command per (depth, width) pair (SINR's (h, m) configurations)."""
    plan = reproduce.resolve("sinr", "paper")
    assert plan["runs"] == [["--depth", "2", "--widths", "32"], ["--depth", "3", "--widths", "128"]]
    assert [r[-4:] for r in reproduce.resolve("sinr", "paper", full=True)["runs"]] == plan["runs"]
    parsed = reproduce.check_accepted(plan)
    assert [(a["depth"], a["widths"]) for a in parsed] == [(2, "32"), (3, "128")]
    assert "inric" in {n["name"]: n["value"] for n in plan["not_applied"]}["baselines"]
    head = ('method = "sinr"\nbench = "b.py"\nout = "file"\n[protocol.cpu]\ndescription = "d"\ngpu_hours = 0.0\n'
            'gpu_hours_source = "cpu"\n[protocol.cpu.values]\n')
    (tmp_path / "sinr.toml").write_text(
        head + 'c = { value = [[1, 8], [2, 16]], source = "s", apply = "each:--a, --b" }\n'
        'seed = { value = [0, 1], source = "s", apply = "each:--seed" }\n')
    runs = reproduce.resolve("sinr", "cpu", folder=tmp_path)["runs"]
    assert runs == [["--a", "1", "--b", "8", "--seed", "0"], ["--a", "1", "--b", "8", "--seed", "1"],
                    ["--a", "2", "--b", "16", "--seed", "0"], ["--a", "2", "--b", "16", "--seed", "1"]]
    (tmp_path / "sinr.toml").write_text(head + 'c = { value = [[1, 8], 2], source = "s", apply = "each:--a,--b" }\n')
    with pytest.raises(reproduce.ProtocolError, match="2-value lists"):
        reproduce.load_protocol("sinr", tmp_path)


def test_run_writes_the_table(tmp_path: Path) -> None:
    bench = tmp_path / "fake_bench.py"
    bench.write_text("import argparse, json\n"
                     "def main(argv=None):\n"
                     "    p = argparse.ArgumentParser(); p.add_argument('--seed', type=int); p.add_argument('--out')\n"
                     "    a = p.parse_args(argv)\n"
                     "    json.dump({'summary': {'psnr': 30.0 + a.seed}}, open(a.out, 'w'))\n")
    (tmp_path / "aire.toml").write_text(
        f'method = "aire"\nbench = "{bench}"\nout = "file"\n'
        '[paper_numbers]\npsnr = { value = 31.0, source = "a table", path = "summary.psnr" }\n'
        'other = { value = 1.0, source = "a figure" }\n'
        '[protocol.cpu]\ndescription = "d"\ngpu_hours = 0.0\ngpu_hours_source = "cpu"\n'
        '[protocol.cpu.values]\nseed = { value = [0, 2], source = "s", apply = "each:--seed" }\n'
        'split = { value = 0.1, source = "s2", apply = "none: not yet" }\n')
    plan = reproduce.resolve("aire", "cpu", folder=tmp_path)
    report = reproduce.run(plan, tmp_path / "out")
    row = report["table"][0]
    assert (row["paper"], row["inrkit_mean"], row["runs"], row["status"]) == (31.0, 31.0, 2, "measured")
    assert report["table"][1]["status"] == "not reported by the benchmark"
    text = (tmp_path / "out" / "aire_cpu.md").read_text()
    assert "| psnr | 31.0 | 31 +- 1.4 (2) | measured | a table |" in text and "`split` = 0.1: not yet" in text


def test_docs_section_is_generated_from_the_toml_files() -> None:
    """docs/protocols.md's protocol tables are `bench/reproduce.py METHOD --docs`: they cannot drift from the files."""
    text = (ROOT / "docs" / "protocols.md").read_text()
    head = "## The protocols (generated from the TOML files)\n\n"
    assert head in text
    assert text.split(head, 1)[1].rstrip("\n") == reproduce.protocols_markdown().rstrip("\n")
