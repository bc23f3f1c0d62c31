"""bench/compress_rd.py and bench/sinr_qat.py take the SINR paper's (h, m) as ``--depth H --widths M``: the networks
have H hidden layers, every codec arm runs on them, and runs named per configuration keep their curves apart."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
compress_rd = pytest.importorskip("compress_rd")
sinr_qat = pytest.importorskip("sinr_qat")


def test_depth_flag_builds_that_many_hidden_layers() -> None:
    args = compress_rd.parser().parse_args(["--depth", "2", "--widths", "32"])
    assert args.depth == 2 and args.widths == "32"
    model = compress_rd.network(32, args.depth)
    assert model.widths == [2, 32, 32, 3] and model.num_layers == 3  # 2 hidden layers + the linear output
    assert compress_rd.network(128).widths == [2, 128, 128, 128, 3]  # the default stays depth 3
    assert compress_rd.parser().parse_args([]).depth == 3
    qat_args = sinr_qat.parser().parse_args(["--depth", "2", "--widths", "32"])
    assert (qat_args.depth, qat_args.widths) == (2, "32") and sinr_qat.parser().parse_args([]).depth == 3
    with pytest.raises(ValueError):
        compress_rd.network(8, 0)


def test_every_arm_encodes_a_depth_2_network(tiny_image: np.ndarray) -> None:
    from inrkit.signals import ImageSignal

    signal = ImageSignal(tiny_image)
    args = argparse.Namespace(quant_bits=[6], sparsities=[0.3], sinr_bits=[6], overcomplete=4.0, finetune=2,
                              finetune_lr=1e-4, device="cpu")
    points = compress_rd.inr_points(compress_rd.network(12, 2), signal, tiny_image.shape[0] * tiny_image.shape[1],
                                    args)
    assert {p["codec"] for p in points} == {"coin", "quant", "sinr", "sinr-ft", "sinr-paper"}
    assert all(p["bytes"] > 0 and np.isfinite(p["psnr"]) for p in points)


def test_curves_folder_follows_the_output_name() -> None:
    results = ROOT / "bench" / "results"
    assert compress_rd.rd_folder(results / "compress_rd.json") == results / "kodak-rd"  # the committed layout
    run0, run1 = (compress_rd.rd_folder(Path("out") / f"sinr_paper_run{i}.json") for i in (0, 1))
    assert run0 == Path("out/sinr_paper_run0_kodak-rd") and run0 != run1
    assert compress_rd.rd_folder(Path("x.json"), "curves") == Path("curves")


def test_sinr_qat_arms_encode_a_depth_2_network(tiny_image: np.ndarray) -> None:
    from inrkit.signals import ImageSignal

    args = argparse.Namespace(quant_bits=[6], qat_bits=[6], sinr_bits=[6], sparsities=[0.3], overcomplete=4.0,
                              qat_steps=2, qat_lr=sinr_qat.QAT_LR, finetune=2, finetune_lr=1e-4)
    points = sinr_qat.network_points(compress_rd.network(12, 2), ImageSignal(tiny_image), args)
    assert {p["codec"] for p in points} == {"quant", "quant-rows", "qat", "sinr", "sinr-qat", "sinr-qat-ft"}
    assert all(p["bytes"] > 0 and np.isfinite(p["psnr"]) for p in points)
