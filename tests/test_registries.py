"""Registries (signal kinds) and the CLI generated from the configs.

Adding a signal kind touches ONE place: the test below registers a ``.csv`` 1D field kind and
fits, evaluates and renders it through the ordinary ``inrkit`` commands.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from inrkit.api import ModelSpec
from inrkit.cli import build_parser, main
from inrkit.cli.common import add_config, build_config, docstring_args
from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.models import ARCHITECTURES, load_model
from inrkit.prune import CRITERIA
from inrkit.signals import KINDS, GridSignal, SDFSignal, Signal, SignalKind, check_metadata, load_signal
from inrkit.signals.kinds import check_grid_meta
from inrkit.signals.render import grid_values, render_shape
from inrkit.train import FitConfig


# ---------------------------------------------------------------- a new kind, in one place
def _load_csv(path, test_fraction=0.0, seed=0, **_):
    values = np.loadtxt(path, delimiter=",", ndmin=1).astype(np.float32)
    return GridSignal(values[:, None], kind="csv", test_fraction=test_fraction, seed=seed, name=Path(path).name)


def _render_csv(model, meta, path, size):
    np.savetxt(path, grid_values(model, meta, render_shape(model, meta, size))[:, 0], delimiter=",")
    return path


CSV_KIND = SignalKind("csv", (".csv",), _load_csv, _render_csv, lambda meta, n: check_grid_meta(meta, n, dims=1))


@pytest.fixture
def csv_kind():
    KINDS.register("csv", CSV_KIND)
    yield CSV_KIND
    KINDS.unregister("csv")


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "wave.csv"
    np.savetxt(path, 3.0 + np.sin(np.linspace(0, 6, 40)), delimiter=",")
    return path


def test_new_signal_kind_fits_and_renders_through_the_cli(csv_kind, csv_file, tmp_path, capsys):
    model = tmp_path / "wave.safetensors"
    assert main(["fit", str(csv_file), "-o", str(model), "--hidden", "16x2", "--steps", "60", "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["psnr"] > 15
    assert main(["eval", str(model), str(csv_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["psnr"] == pytest.approx(fitted["psnr"], abs=1e-5)
    out = tmp_path / "fine.csv"
    assert main(["render", str(model), "-o", str(out), "--size", "80", "--json"]) == 0
    values = np.loadtxt(out, delimiter=",")
    assert values.shape == (80,) and 1.5 < values.mean() < 4.5
    _, header = load_model(model)
    assert header["signal"]["kind"] == "csv" and header["extra"]["config"]["fit"]["steps"] == 60


def test_unknown_suffix_lists_registered_kinds(csv_kind, csv_file, tmp_path):
    path = tmp_path / "x.xyz"
    path.write_text("1")
    with pytest.raises(InvalidFileError, match=r"\.csv"):
        load_signal(path)
    assert load_signal(csv_file).metadata()["kind"] == "csv"


def test_builtin_kinds_and_bf16_flags():
    assert {"image", "volume", "field", "sdf", "analytic"} <= set(KINDS.names())
    assert Signal.supports_bf16 and not SDFSignal.supports_bf16
    assert isinstance(load_signal("analytic:sin-radial"), Signal)


def test_check_metadata():
    meta = {"kind": "image", "shape": [4, 5], "channels": 3, "value_offset": [127.5] * 3, "value_scale": [127.5] * 3}
    assert check_metadata(meta, 3, kind="image") is meta
    for bad in ({**meta, "shape": [4]}, {**meta, "channels": 1}, {**meta, "value_scale": [1.0, float("nan"), 1.0]},
                {k: v for k, v in meta.items() if k != "shape"}):
        with pytest.raises(InvalidFileError):
            check_metadata(bad, 3, kind="image")
    with pytest.raises(InvalidFileError, match="image"):
        check_metadata({"kind": "volume"}, 1, kind="image")


# ---------------------------------------------------------------- CLI from configs
def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


def test_fit_flags_default_to_fitconfig():
    args = _subparser("fit").parse_args(["x.png", "-o", "m.safetensors"])
    assert build_config(FitConfig, args) == FitConfig()
    assert build_config(ModelSpec, args) == ModelSpec()


def test_help_shows_every_default_and_registry_choices():
    text = _subparser("fit").format_help()
    from inrkit.cli.core import FIT_FLAGS

    for f in dataclasses.fields(FitConfig):
        flag = FIT_FLAGS.get(f.name, "--" + f.name.replace("_", "-"))
        assert flag in text or flag.replace("--", "--no-") in text, f.name
    assert "1000, or what --arch auto chose" in " ".join(text.split()) and "(default: cosine)" in text
    arch = next(a for a in _subparser("fit")._actions if a.dest == "arch")
    assert tuple(arch.choices) == ("auto", *ARCHITECTURES.names())
    method = next(a for a in _subparser("prune")._actions if a.dest == "method")
    assert tuple(method.choices) == tuple(CRITERIA.names())


@pytest.mark.parametrize("command, old, new, dest", [
    ("fit", "--iters", "--steps", "steps"),
    ("fit", "--batch", "--batch-size", "batch_size"),
    ("prune", "--retrain", "--finetune", "finetune"),
    ("meta-encode", "--iters", "--steps", "steps"),
])
def test_old_flags_are_aliases(command, old, new, dest):
    parser = _subparser(command)
    positional = {"fit": ["x.png", "-o", "m"], "prune": ["m", "-o", "p"],
                  "meta-encode": ["s", "--init", "i", "-o", "o"]}
    a = parser.parse_args(positional[command] + [old, "7"])
    b = parser.parse_args(positional[command] + [new, "7"])
    assert getattr(a, dest) == getattr(b, dest) == 7


def test_nerf_flags_share_the_spellings():
    text = _subparser("nerf-train").format_help() + _subparser("nerf-prune").format_help()
    for flag in ("--steps", "--iters", "--batch-size", "--batch", "--finetune", "--retrain"):
        assert flag in text


@dataclasses.dataclass
class _Demo:
    """A config.

    Args:
        width, depth: size of the thing,
            continued here.
        name: a ``name``.
        widths: some widths.
        quiet: be quiet.
    """

    width: int = 3
    depth: int | None = None
    name: str = "x"
    widths: tuple[int, ...] = (1, 2)
    quiet: bool = True


def test_field_to_flag_helper():
    docs = docstring_args(_Demo)
    assert docs["depth"] == "size of the thing, continued here." and docs["name"] == "a name."
    parser = argparse.ArgumentParser()
    add_config(parser, _Demo, aliases={"width": ["--w"]})
    assert build_config(_Demo, parser.parse_args([])) == _Demo()
    cfg = build_config(_Demo, parser.parse_args(["--w", "5", "--depth", "2", "--widths", "4,5,6", "--no-quiet"]))
    assert cfg == _Demo(width=5, depth=2, widths=(4, 5, 6), quiet=False)
    assert "(default: 1,2)" in parser.format_help()


def test_model_spec_passes_each_builder_the_options_it_names() -> None:
    """A registered architecture gets the ModelSpec options its builder's signature names, and its default widths."""
    import torch

    from inrkit.api import ModelSpec
    from inrkit.models import siren

    seen: dict = {}

    def wide_siren(in_dim, out_dim, hidden=(24, 24), omega0=30.0, generator=None):
        seen.update(hidden=list(hidden), omega0=omega0)
        return siren(in_dim, out_dim, hidden, omega0=omega0, generator=generator)

    ARCHITECTURES.register("test-wide-siren", wide_siren)
    try:
        spec = ModelSpec(arch="test-wide-siren", omega0=12.0)
        model = spec.build(2, 1, torch.Generator().manual_seed(0))
        assert seen == {"hidden": [24, 24], "omega0": 12.0} and model.widths == [2, 24, 24, 1]
        with pytest.raises(InvalidInputError, match="levels"):
            ModelSpec(arch="test-wide-siren", levels=4)  # a grid option its builder does not take
    finally:
        ARCHITECTURES.unregister("test-wide-siren")
