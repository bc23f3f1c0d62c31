"""Meta-INR: sub-sampling, meta steps (first and second order), checkpoints, adaptation, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.func import functional_call

from inrkit.cli import main
from inrkit.errors import InvalidFileError
from inrkit.meta import (
    FinetuneConfig,
    MetaConfig,
    encode_series,
    finetune,
    first_reaching,
    meta_step,
    meta_train,
    post_adaptation_loss,
    pretrain_members,
    pretrain_plain,
    subsample,
    tsne_plot,
)
from inrkit.meta.functional import maml_grad, param_dict
from inrkit.meta.simulate import write_series
from inrkit.models.io import load_model
from inrkit.models.mlp import siren
from inrkit.runner import COLUMNS, SUMMARY_KEYS
from inrkit.signals.series import VolumeSeries


def _series(t=4, n=16) -> VolumeSeries:
    """Smooth travelling blobs: related volumes, like time steps of a simulation."""
    x = np.linspace(-1, 1, n)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    vols = [np.exp(-((X - 0.3 * np.cos(k)) ** 2 + (Y - 0.3 * np.sin(k)) ** 2 + Z ** 2) / 0.2) for k in range(t)]
    return VolumeSeries.from_arrays(np.stack(vols).astype(np.float32), name="blobs")


def _config(**kw) -> MetaConfig:
    base = dict(hidden=(16, 16), inner_steps=3, outer_steps=4, meta_batch=2, inner_lr=1e-3, outer_lr=1e-3,
                progress=False, log_every=1)
    return MetaConfig(**{**base, **kw})


def test_subsampling_ratio_is_space4_time2():
    series = _series(t=4, n=16)
    members, coords, targets, fraction = subsample(series, 4, 2)
    assert members == [0, 2]
    assert coords.shape == (64, 3) and targets.shape == (2, 64, 1)
    assert fraction == pytest.approx(1 / 128)  # (1/4)^3 space x 1/2 time = 0.78%
    assert pretrain_members(10, 2, train_members=[1, 2, 3, 4, 5]) == [1, 3, 5]
    with pytest.raises(Exception, match="training members"):
        pretrain_members(4, 2, train_members=[7])


@pytest.mark.parametrize("order, inner_lr", [("first", 1e-3), ("second", 1e-2)])
def test_meta_steps_reduce_post_adaptation_loss(order, inner_lr):
    series = _series()
    _, coords, targets, _ = subsample(series, 4, 2)
    cfg = _config(order=order, inner_lr=inner_lr)
    model = siren(3, 1, cfg.hidden, generator=torch.Generator().manual_seed(0))
    before = post_adaptation_loss(model, coords, targets, cfg).mean()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.outer_lr)
    for _ in range(5):
        info = meta_step(model, opt, coords, targets, cfg)
    after = post_adaptation_loss(model, coords, targets, cfg).mean()
    assert torch.isfinite(after) and after < 0.9 * before
    if order == "second":
        assert "loss_after" in info


def test_second_order_gradient_matches_unrolled_autograd():
    torch.manual_seed(0)
    model = siren(3, 1, (8,), generator=torch.Generator().manual_seed(1))
    x, y = torch.rand(20, 3) * 2 - 1, torch.rand(2, 20, 1)
    theta = param_dict(model)
    grads, _ = maml_grad(model, theta, x, y, steps=2, lr=0.05)
    leaves = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    total = 0.0
    for t in range(2):
        phi = dict(leaves)
        for _ in range(2):
            loss = torch.mean((functional_call(model, phi, (x,)) - y[t]) ** 2)
            g = torch.autograd.grad(loss, list(phi.values()), create_graph=True)
            phi = {k: p - 0.05 * gi for (k, p), gi in zip(phi.items(), g)}
        total = total + torch.mean((functional_call(model, phi, (x,)) - y[t]) ** 2) / 2
    ref = torch.autograd.grad(total, list(leaves.values()))
    for (k, _), r in zip(leaves.items(), ref):
        torch.testing.assert_close(grads[k], r, rtol=1e-4, atol=1e-6)


def test_meta_train_both_orders_and_plain_pretraining():
    series = _series()
    for order in ("first", "second"):
        res = meta_train(series, _config(order=order, inner_lr=1e-3 if order == "first" else 1e-2))
        assert res.steps == 4 and len(res.history) == 4 and res.seconds > 0
        assert all(torch.isfinite(p).all() for p in res.model.parameters())
        assert res.subsample_fraction == pytest.approx(1 / 128)
    plain = pretrain_plain(series, _config(), steps=30)
    assert plain.steps == 30 and len(plain.history) == 10
    assert plain.history[-1]["loss"] < plain.history[0]["loss"]


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tmp_path):
    series = _series()
    straight = meta_train(series, _config(outer_steps=4))
    ckpt = tmp_path / "meta.ckpt"
    meta_train(series, _config(outer_steps=2, checkpoint_path=str(ckpt), checkpoint_every=1))
    resumed = meta_train(series, _config(outer_steps=4, checkpoint_path=str(ckpt), resume=True))
    assert resumed.steps == 4 and [h["step"] for h in resumed.history] == [1, 2, 3, 4]
    assert all(torch.equal(a, b) for a, b in zip(straight.model.parameters(), resumed.model.parameters()))
    with pytest.raises(Exception, match="inner_steps"):
        meta_train(series, _config(outer_steps=5, inner_steps=2, checkpoint_path=str(ckpt), resume=True))
    ckpt.write_bytes(b"garbage")
    with pytest.raises(Exception, match="not a readable meta-train checkpoint"):
        meta_train(series, _config(checkpoint_path=str(ckpt), resume=True))


def test_adapt_history_and_meta_init_beats_scratch_on_a_held_out_volume():
    series = _series(t=6)
    res = meta_train(series, _config(outer_steps=15, inner_steps=5, train_members=[0, 1, 2, 3, 4]))
    assert 5 not in res.train_members
    coords, target = series.coords(2), series.targets([5], stride=2)[0]
    cfg = FinetuneConfig(steps=10, lr=1e-3, progress=False)
    meta = finetune(res.model, coords, target, cfg)
    scratch = finetune(siren(3, 1, (16, 16), generator=torch.Generator().manual_seed(0)), coords, target, cfg)
    assert [h["step"] for h in meta.history] == list(range(11))
    assert all(b["seconds"] >= a["seconds"] for a, b in zip(meta.history, meta.history[1:]))
    assert meta.psnr > meta.history[0]["psnr"]
    assert meta.psnr > scratch.psnr
    assert first_reaching(meta.history, scratch.psnr)["step"] <= 10
    early = finetune(res.model, coords, target, FinetuneConfig(steps=50, lr=1e-3, target_psnr=meta.history[3]["psnr"],
                                                        progress=False))
    assert early.steps <= 4
    mini = finetune(res.model, coords, target,
                    FinetuneConfig(steps=6, lr=1e-3, batch_size=64, eval_every=3, progress=False))
    assert [h["step"] for h in mini.history] == [3, 6]


def test_encode_series_and_tsne(tmp_path):
    series = _series(t=5, n=8)
    init = siren(3, 1, (8, 8), generator=torch.Generator().manual_seed(0))
    summary = encode_series(series, init, tmp_path / "enc", FinetuneConfig(steps=3, lr=1e-3, progress=False))
    assert summary["command"] == "meta-encode" and [m["member"] for m in summary["inputs"]] == list(range(5))
    assert tuple(summary) == SUMMARY_KEYS and all(set(COLUMNS) <= set(r) for r in summary["inputs"])
    saved = json.loads((tmp_path / "enc" / "summary.json").read_text())
    totals = summary["totals"]
    assert saved["totals"]["mean_psnr"] == pytest.approx(totals["mean_psnr"]) and totals["ok"] == 5
    model, header = load_model(tmp_path / "enc" / "blobs_0002.safetensors")
    assert header["signal"]["label"] == 2.0 and header["signal"]["shape"] == [8, 8, 8]
    assert header["extra"]["meta_encode"]["psnr"] == pytest.approx(summary["inputs"][2]["psnr"])
    member = summary["inputs"][2]
    assert member["bytes"] == (tmp_path / "enc" / "blobs_0002.safetensors").stat().st_size
    assert member["raw_bytes"] == 8 * 8 * 8 * 4 and member["ratio"] == round(member["bytes"] / (8 * 8 * 8 * 4), 4)
    assert totals["raw_bytes"] == 5 * 8 * 8 * 8 * 4 and totals["bytes"] == sum(m["bytes"] for m in summary["inputs"])
    out = tsne_plot(tmp_path / "enc", tmp_path / "tsne.png")
    assert (tmp_path / "tsne.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(out["points"]) == 5 and out["labels"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    # a hostile summary: a model path outside the folder, a repeated model, NaN: refused cleanly
    (tmp_path / "outside.safetensors").write_bytes((tmp_path / "enc" / "blobs_0002.safetensors").read_bytes())
    link = tmp_path / "enc" / "link.safetensors"
    link.symlink_to(tmp_path / "outside.safetensors")
    for rows in ([{"output": str(link), "label": 0, "status": "ok"}] * 3,
                 [{"output": "blobs_0001.safetensors", "label": 0, "status": "ok"}] * 3,
                 [{"output": "blobs_0001.safetensors", "label": float("nan"), "status": "ok"}]):
        (tmp_path / "enc" / "summary.json").write_text(json.dumps(
            {**saved, "inputs": rows}))
        with pytest.raises(InvalidFileError):
            tsne_plot(tmp_path / "enc", tmp_path / "tsne2.png")


def test_encode_series_resumes(tmp_path, monkeypatch):
    """A rerun skips the members an earlier run finished (same series, initialisation and settings, outputs
    unchanged); an interrupted run keeps its finished stacks; other settings or --redo fine-tune everything."""
    import importlib

    ft = importlib.import_module("inrkit.meta.finetune")  # the module (inrkit.meta.finetune is also a function)
    series = _series(t=3, n=8)
    init = siren(3, 1, (8, 8), generator=torch.Generator().manual_seed(0))
    cfg, out = FinetuneConfig(steps=2, lr=1e-3, progress=False), tmp_path / "enc"
    real, calls = ft.finetune_many, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "finetune_many", interrupted)
    with pytest.raises(KeyboardInterrupt):
        encode_series(series, init, out, cfg, max_stack=1)
    first = json.loads((out / "summary.json").read_text())
    assert (first["totals"]["ok"], first["totals"]["unfinished"]) == (1, 2)
    monkeypatch.setattr(ft, "finetune_many", real)
    done = encode_series(series, init, out, cfg)
    assert (done["totals"]["skipped"], done["totals"]["ok"]) == (1, 2)
    stamps = [(out / f"blobs_{i:04d}.safetensors").stat().st_mtime_ns for i in range(3)]

    def refuse(*args, **kwargs):
        raise AssertionError("a finished member was fine-tuned again")

    monkeypatch.setattr(ft, "finetune_many", refuse)
    again = encode_series(series, init, out, cfg)
    assert again["totals"]["skipped"] == 3 and [r["psnr"] for r in again["inputs"]] == [
        r["psnr"] for r in done["inputs"]]
    assert [(out / f"blobs_{i:04d}.safetensors").stat().st_mtime_ns for i in range(3)] == stamps
    monkeypatch.setattr(ft, "finetune_many", real)
    (out / "blobs_0001.safetensors").write_bytes(b"altered")  # an altered output is redone
    fixed = encode_series(series, init, out, cfg)
    assert [r["status"] for r in fixed["inputs"]] == ["skipped", "ok", "skipped"]
    other = siren(3, 1, (8, 8), generator=torch.Generator().manual_seed(1))
    assert encode_series(series, other, out, cfg)["totals"]["ok"] == 3  # another initialisation: all again
    assert encode_series(series, other, out, cfg, redo=True)["totals"]["ok"] == 3


def test_cli_meta_commands(tmp_path, capsys):
    raw = _series(t=4, n=8)
    write_series(tmp_path / "s", raw.denormalize(raw.values), name="v", labels=[0, 1, 2, 3], label_name="time")
    meta = tmp_path / "meta.safetensors"
    assert main(["meta-train", str(tmp_path / "s"), "-o", str(meta), "--hidden", "8x2", "--outer-steps", "2",
                 "--inner-steps", "2", "--no-progress", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["outer_steps"] == 2 and res["subsample_fraction"] == pytest.approx(1 / 128)
    _, header = load_model(meta)
    assert header["extra"]["meta"]["inner_steps"] == 2 and header["extra"]["meta"]["order"] == "first"
    assert main(["meta-encode", str(tmp_path / "s"), "--init", str(meta), "-o", str(tmp_path / "enc"),
                 "--steps", "2", "--no-progress", "--json"]) == 0
    enc = json.loads(capsys.readouterr().out)
    assert len(enc["inputs"]) == 4 and enc["totals"]["ok"] == 4
    argv = ["meta-encode", str(tmp_path / "s"), "--init", str(meta), "-o", str(tmp_path / "enc"), "--steps", "2",
            "--no-progress", "--json"]
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["totals"]["skipped"] == 4  # resumed
    assert main([*argv, "--redo"]) == 0 and json.loads(capsys.readouterr().out)["totals"]["ok"] == 4
    assert main(["meta-tsne", str(tmp_path / "enc"), "-o", str(tmp_path / "t.png"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["points"]) == 4
    assert main(["meta-train", str(tmp_path / "missing"), "-o", str(meta), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such series folder" in err[0]
    assert main(["meta-tsne", str(tmp_path / "s"), "-o", str(tmp_path / "t.png")]) == 2
    assert "summary.json" in capsys.readouterr().err


# ------------------------------------------------------------------ the inner loop runs through fit
def test_batched_inner_loop_matches_per_task_fits():
    from inrkit.meta import adapt_tasks
    from inrkit.train import FitConfig, PointTask, fit

    model = siren(3, 1, (16, 16), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 3, generator=gen) * 2 - 1, torch.rand(3, 64, 1, generator=gen) * 2 - 1
    for batch in (None, 20):
        adapted, first = adapt_tasks(model, x, y, steps=5, lr=1e-3, batch=batch,
                                     generator=torch.Generator().manual_seed(7))
        for b in range(3):
            cfg = FitConfig(steps=5, lr=1e-3, schedule="constant", batch_size=batch, seed=7, log_every=1,
                            precision="fp32", evaluate=False, progress=False)
            single = fit(model.copy(), PointTask(x, y[b]), cfg)
            assert first[b].item() == pytest.approx(single.history[0]["loss"], rel=1e-5)
            for name, p in single.model.named_parameters():
                torch.testing.assert_close(adapted[name][b], p.detach(), rtol=1e-4, atol=1e-6)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), siren(
        3, 1, (16, 16), generator=torch.Generator().manual_seed(0)).parameters()))  # the init is untouched


# Recorded from the pre-trainer implementation (functional torch.func inner loop, own Adam loops).
RECORDED_LOSS_BEFORE = {
    "first": [0.821527361869812, 0.7926461696624756, 0.7649743556976318, 0.738635778427124],
    "first_batch": [0.8757778406143188, 0.7537230253219604, 0.7687270641326904, 0.8022686243057251],
    "first_sgd": [0.821527361869812, 0.7926681041717529, 0.765167236328125, 0.7391242980957031],
    "second": [0.821527361869812, 0.8091146349906921, 0.7945513725280762, 0.7782546877861023],
}
RECORDED_PLAIN = [0.7652372717857361, 0.6922862529754639, 0.6330875158309937, 0.5819719433784485,
                  0.5343698263168335, 0.4861728847026825, 0.4370432198047638, 0.38840025663375854,
                  0.3420637249946594, 0.2993048429489136]
RECORDED_FINETUNE = [6.879024058050134, 7.021597356222502, 7.161386370108715, 7.297348817690656, 7.428970679026479,
                     7.556346705466419, 7.6797917974968355, 7.799679556861696, 7.916474923954908, 8.030703623145879,
                     8.142882538780315]


def test_meta_training_reproduces_the_recorded_pre_trainer_numbers():
    series = _series()
    variants = {"first": {}, "first_batch": {"inner_batch": 20}, "first_sgd": {"inner_optimizer": "sgd"},
                "second": {"order": "second", "inner_lr": 1e-2}}
    for name, kw in variants.items():
        res = meta_train(series, _config(**kw))
        np.testing.assert_allclose([h["loss_before"] for h in res.history], RECORDED_LOSS_BEFORE[name], rtol=1e-5)
    plain = pretrain_plain(series, _config(), steps=30)
    np.testing.assert_allclose([h["loss"] for h in plain.history], RECORDED_PLAIN, rtol=1e-5)
    model = siren(3, 1, (16, 16), generator=torch.Generator().manual_seed(0))
    coords, target = series.coords(2), series.targets([1], stride=2)[0]
    res = finetune(model, coords, target, FinetuneConfig(steps=10, lr=1e-3, progress=False))
    np.testing.assert_allclose([h["psnr"] for h in res.history], RECORDED_FINETUNE, rtol=1e-6)


def test_meta_checkpoint_is_the_trainer_format_and_refuses_other_kinds(tmp_path):
    from inrkit.train import FitConfig, fit, load_checkpoint

    series = _series()
    ckpt = tmp_path / "meta.ckpt"
    meta_train(series, _config(outer_steps=2, checkpoint_path=str(ckpt)))
    saved = load_checkpoint(ckpt, "meta-train")
    assert saved.step == 2 and saved.config["inner_steps"] == 3 and saved.header is not None
    with pytest.raises(Exception, match="meta-train checkpoint, not a fit one"):
        fit(siren(3, 1, (16, 16)), _series_signal(series), FitConfig(steps=3, checkpoint_path=str(ckpt), resume=True,
                                                                      progress=False))


def _series_signal(series):
    from inrkit.train import PointTask

    return PointTask(series.coords(4), series.targets([0], stride=4)[0])
