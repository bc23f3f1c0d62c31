"""The core CLI commands, their JSON output and their handling of bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from inrkit.cli import main
from inrkit.models import save_model, siren


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def png(tmp_path, tiny_image):
    path = tmp_path / "img.png"
    Image.fromarray(tiny_image.astype(np.uint8)).save(path)
    return path


def test_fit_info_eval_render(png, tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    code, out, _ = run(["fit", png, "-o", model, "--hidden", "16x2", "--steps", "20", "--json"], capsys)
    assert code == 0
    fitted = json.loads(out)
    assert {"psnr", "steps", "seconds", "params"} <= set(fitted) and fitted["steps"] == 20
    code, out, _ = run(["info", model, "--json"], capsys)
    info = json.loads(out)
    assert info["widths"] == [2, 16, 16, 3] and info["params"] == fitted["params"]
    code, out, _ = run(["eval", model, png, "--json"], capsys)
    assert json.loads(out)["psnr"] == pytest.approx(fitted["psnr"], abs=1e-6)
    code, out, _ = run(["render", model, "-o", tmp_path / "big.png", "--size", "48,64", "--json"], capsys)
    assert code == 0 and np.asarray(Image.open(tmp_path / "big.png")).shape == (48, 64, 3)


def test_synth_sin_radial(tmp_path, capsys):
    code, out, _ = run(["synth", "sin-radial", "-o", tmp_path / "f.npy", "--size", "32", "--alpha", "0.2", "--json"],
                       capsys)
    field = np.load(tmp_path / "f.npy")
    assert code == 0 and field.shape == (32, 32) and json.loads(out)["alpha"] == 0.2
    assert field[16, 16] == pytest.approx(np.sin(1 / (0.2 + np.hypot(1 / 31, 1 / 31))), abs=1e-4)


@pytest.mark.parametrize("args, message", [
    (["fit", "missing.png", "-o", "x.safetensors"], "no such file"),
    (["info", "missing.safetensors"], "no such"),
    (["fit", "{png}", "-o", "x.safetensors", "--hidden", "wide"], "hidden"),
    (["fit", "{png}", "-o", "x.safetensors", "--crop", "1:2"], "crop"),
    (["render", "{bad}", "-o", "x.png"], "corrupt"),
])
def test_bad_input_one_line_exit_2(args, message, png, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage")
    args = [a.format(png=png, bad=bad) for a in args]
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_console_script_bad_input_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "inrkit", "eval", str(tmp_path / "a.safetensors"), "b.png"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("inrkit: error:") and "Traceback" not in proc.stderr


def test_truncated_model_via_cli(tmp_path, capsys):
    path = save_model(siren(2, 1, [8]), tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:-7])
    code, _, err = run(["info", path], capsys)
    assert code == 2 and "inrkit: error:" in err


def test_demo_writes_its_outputs(tmp_path, capsys):
    code, out, _ = run(["demo", "-o", tmp_path / "demo", "--size", "16", "--steps", "5", "--json"], capsys)
    metrics = json.loads(out)
    assert code == 0 and metrics["steps"] == 5 and metrics["psnr"] > 0
    for name in ["model.safetensors", "reconstruction.png", "upsampled.png", "comparison.png", "metrics.json",
                 "history.json", "history.png"]:
        assert (tmp_path / "demo" / name).is_file(), name
    assert np.asarray(Image.open(tmp_path / "demo" / "upsampled.png")).shape == (64, 64, 3)


@pytest.mark.parametrize("arch", ["finer", "ffn"])
def test_fit_other_architectures(arch, png, tmp_path, capsys):
    code, out, _ = run(["fit", png, "-o", tmp_path / "m.safetensors", "--arch", arch, "--hidden", "16x2",
                        "--steps", "10", "--json"], capsys)
    assert code == 0 and json.loads(out)["steps"] == 10
    code, out, _ = run(["info", tmp_path / "m.safetensors", "--json"], capsys)
    assert json.loads(out)["activations"][0] == ("finer" if arch == "finer" else "relu")


def test_sigterm_during_fit_leaves_no_temp_files_and_a_valid_checkpoint(tmp_path):
    """SIGTERM becomes an exception: atomic writers clean up, the last checkpoint stays loadable."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from inrkit.train.checkpoint import load_checkpoint

    ckpt = tmp_path / "ck.safetensors"
    cmd = [sys.executable, "-m", "inrkit", "fit", "analytic:sin-radial", "-o", str(tmp_path / "m.safetensors"),
           "--hidden", "8x2", "--steps", "1000000", "--checkpoint", str(ckpt), "--checkpoint-every", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and b"terminated" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert load_checkpoint(ckpt, "fit").step >= 1
