"""Model files: safetensors round trip, validation, tampering, .npz import."""
import json
import struct

import numpy as np
import pytest
import torch

from inrkit.errors import InvalidFileError
from inrkit.models import ffn, load_model, save_model, siren


def test_round_trip_identical_outputs(tmp_path):
    m = siren(2, 3, [16, 16])
    path = save_model(m, tmp_path / "m.safetensors", signal={"kind": "image", "shape": [4, 4]})
    loaded, header = load_model(path)
    x = torch.rand(50, 2)
    assert torch.equal(loaded(x), m(x))
    assert header["signal"]["kind"] == "image" and loaded.widths == m.widths


def test_fourier_round_trip(tmp_path):
    m = ffn(2, 1, [8], num_frequencies=4)
    loaded, _ = load_model(save_model(m, tmp_path / "f.safetensors"))
    x = torch.rand(9, 2)
    assert torch.equal(loaded(x), m(x))


def test_no_pickle_in_file(tmp_path):
    data = save_model(siren(2, 1, [4]), tmp_path / "m.safetensors").read_bytes()
    header_len = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8: 8 + header_len])
    assert json.loads(header["__metadata__"]["inrkit"])["format"] == "inrkit-model"


@pytest.mark.parametrize("cut", [0, 5, 30, -10])
def test_truncated_file_rejected(tmp_path, cut):
    data = save_model(siren(2, 1, [8]), tmp_path / "m.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[:cut])
    with pytest.raises(InvalidFileError):
        load_model(bad)


def test_altered_weights_rejected(tmp_path):
    path = save_model(siren(2, 1, [8]), tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidFileError, match="checksum"):
        load_model(path)


def test_header_shape_mismatch_rejected(tmp_path):
    path = save_model(siren(2, 1, [8]), tmp_path / "m.safetensors")
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8: 8 + n])
    meta = json.loads(header["__metadata__"]["inrkit"])
    meta["widths"] = [2, 9, 1]
    header["__metadata__"]["inrkit"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n:])
    with pytest.raises(InvalidFileError, match="shape"):
        load_model(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(InvalidFileError, match="no such"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model at all")
    with pytest.raises(InvalidFileError):
        load_model(tmp_path / "junk.safetensors")


def test_npz_import_matches_manual_forward(tmp_path):
    rng = np.random.default_rng(0)
    W0, b0 = rng.normal(size=(5, 2)), rng.normal(size=5)
    W1, b1 = rng.normal(size=(4, 5)), rng.normal(size=4)
    W2, b2 = rng.normal(size=(1, 4)), rng.normal(size=1)
    np.savez(tmp_path / "w.npz", W0=W0, b0=b0, W1=W1, b1=b1, W2=W2, b2=b2,
             activations=np.array(["relu", "tanh", "identity"]))
    model, header = load_model(tmp_path / "w.npz")
    x = rng.uniform(-1, 1, size=(6, 2))
    ref = np.tanh(np.maximum(x @ W0.T + b0, 0) @ W1.T + b1) @ W2.T + b2
    assert np.allclose(model(torch.tensor(x, dtype=torch.float32)).detach().numpy(), ref, atol=1e-4)
    assert header["extra"]["source"] == "npz"


def test_npz_sine_with_omega(tmp_path):
    rng = np.random.default_rng(1)
    W0, b0, W1, b1 = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=(1, 3)), rng.normal(size=1)
    np.savez(tmp_path / "s.npz", W0=W0, b0=b0, W1=W1, b1=b1, activations=np.array(["sine", "identity"]),
             omega0=np.array([30.0]))
    model, _ = load_model(tmp_path / "s.npz")
    x = rng.uniform(-1, 1, size=(4, 2))
    ref = np.sin(30 * (x @ W0.T + b0)) @ W1.T + b1
    assert np.allclose(model(torch.tensor(x, dtype=torch.float32)).detach().numpy(), ref, atol=1e-3)


def test_bad_npz_rejected(tmp_path):
    np.savez(tmp_path / "a.npz", W0=np.ones((3, 2)), b0=np.ones(3), activations=np.array(["relu", "relu"]))
    with pytest.raises(InvalidFileError, match="activations"):
        load_model(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", W0=np.ones((3, 2)), b0=np.ones(4), activations=np.array(["relu"]))
    with pytest.raises(InvalidFileError):
        load_model(tmp_path / "b.npz")
    np.save(tmp_path / "c.npz", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidFileError):
        load_model(tmp_path / "c.npz")


# ------------------------------------------------------------ NeRF MLPs: the same format
from safetensors.torch import save as safetensors_save  # noqa: E402

from inrkit.models import NeRFConfig, NeRFMLP, expected_shapes, find_group, remove_neurons, validate_header  # noqa: E402
from inrkit.models.io import digest, model_header, model_tensors  # noqa: E402

TINY = NeRFConfig(pos_freqs=2, dir_freqs=1, trunk_widths=[16] * 4, skips=[1], feature_width=16, view_widths=[16])


def _rays(n: int = 7):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, generator=g), torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)


def _write_legacy_nerf(model: NeRFMLP, path, scene: dict) -> None:
    """The ``inrkit-nerf`` v1 writer of earlier releases (state_dict names, digest over sorted names)."""
    import hashlib
    from dataclasses import asdict

    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    sha = hashlib.sha256()
    for name in sorted(tensors):
        sha.update(name.encode())
        sha.update(tensors[name].numpy().tobytes())
    header = {"format": "inrkit-nerf", "version": 1, "config": asdict(model.config), "scene": scene,
              "extra": {"note": "old"}, "sha256": sha.hexdigest()}
    path.write_bytes(safetensors_save(tensors, metadata={"inrkit": json.dumps(header)}))


def test_nerf_round_trip_through_save_model(tmp_path):
    model = NeRFMLP(TINY, seed=1)
    remove_neurons(model, find_group(model, "trunk.1"), torch.arange(0, 16, 2))  # a pruned skip layer
    path = save_model(model, tmp_path / "n.safetensors", signal={"height": 4}, extra={"k": 1})
    loaded, header = load_model(path)
    assert isinstance(loaded, NeRFMLP) and header["type"] == "nerf" and header["signal"] == {"height": 4}
    assert loaded.config == model.config and loaded.config.trunk_widths == [16, 8, 16, 16]
    x, d = _rays()
    assert all(torch.equal(a, b) for a, b in zip(model(x, d), loaded(x, d)))
    shapes = expected_shapes(validate_header(header))
    assert shapes == {k: tuple(v.shape) for k, v in sorted(model.state_dict().items())}
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(InvalidFileError, match="checksum"):
        load_model(tmp_path / "bad.safetensors")


def test_legacy_nerf_v1_file_still_loads(tmp_path):
    model = NeRFMLP(TINY, seed=2)
    _write_legacy_nerf(model, tmp_path / "old.safetensors", {"height": 8})
    loaded, header = load_model(tmp_path / "old.safetensors")
    assert isinstance(loaded, NeRFMLP) and header["format"] == "inrkit-model" and header["type"] == "nerf"
    assert header["signal"] == {"height": 8} and header["extra"] == {"note": "old"}
    x, d = _rays()
    assert all(torch.equal(a, b) for a, b in zip(model(x, d), loaded(x, d)))
    from inrkit.nerf.model import load_nerf  # the thin alias keeps the old 'scene' key

    assert load_nerf(tmp_path / "old.safetensors")[1]["scene"] == {"height": 8}


def test_one_digest_for_every_model_type():
    mlp, nerf = siren(2, 1, [4]), NeRFMLP(TINY, seed=0)
    for model in (mlp, nerf):
        header = model_header(model)
        names = list(expected_shapes(header))
        from inrkit.models.io import model_tensors

        tensors = model_tensors(model)
        assert set(names) == set(tensors) and len(digest(tensors, names)) == 64
    assert "type" not in model_header(mlp)  # plain MLP headers are unchanged (old files stay byte-identical)
    with pytest.raises(InvalidFileError, match="model type"):
        validate_header({**model_header(mlp), "type": "transformer"})


# ------------------------------------------------------------ header integrity, limits, resume checks
import hashlib  # noqa: E402
import warnings  # noqa: E402

from model_files import rewrite_header  # noqa: E402

from inrkit.errors import InvalidInputError  # noqa: E402
from inrkit.limits import MAX_JSON_DEPTH, parse_json  # noqa: E402


def _rewrite(path, edit, resign=False):
    """Replace the inrkit header of a model file (``resign``: recompute the v2 checksum)."""
    return rewrite_header(path, edit, resign=resign, out=path.with_name("edited-" + path.name))


def test_checksum_covers_the_header(tmp_path):
    path = save_model(siren(2, 1, [8], omega0=30.0, omega_hidden=30.0), tmp_path / "m.safetensors")
    assert load_model(path)[1]["version"] == 2
    for edit in (lambda h: h["omegas"].__setitem__(0, 10.0), lambda h: h["signal"].update(kind="volume"),
                 lambda h: h["extra"].update(x=1)):
        with pytest.raises(InvalidFileError, match="checksum"):
            load_model(_rewrite(path, edit))


def test_version1_mlp_file_loads_with_a_note(tmp_path):
    m = siren(2, 1, [8])
    tensors = model_tensors(m)
    header = {**model_header(m), "version": 1}
    sha = hashlib.sha256()
    for name in expected_shapes(header):  # the v1 digest: tensors only
        sha.update(name.encode())
        sha.update(tensors[name].numpy().tobytes())
    header["sha256"] = sha.hexdigest()
    (tmp_path / "v1.safetensors").write_bytes(safetensors_save(tensors, metadata={"inrkit": json.dumps(header)}))
    with pytest.warns(UserWarning, match="version-1"):
        loaded, got = load_model(tmp_path / "v1.safetensors")
    x = torch.rand(5, 2)
    assert torch.equal(loaded(x), m(x)) and "version-1" in got["notes"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from inrkit.api import model_info

        assert "notes" in model_info(tmp_path / "v1.safetensors")


@pytest.mark.parametrize("omegas", [[float("nan"), 30.0], [float("inf"), 30.0], [-30.0, 30.0], [1e9, 30.0],
                                    [True, 30.0], ["30", 30.0]])
def test_non_finite_or_out_of_range_omegas_refused_even_when_signed(tmp_path, omegas):
    path = save_model(siren(2, 1, [8]), tmp_path / "m.safetensors")
    with pytest.raises(InvalidFileError, match="omegas"):
        load_model(_rewrite(path, lambda h: h.update(omegas=omegas), resign=True))


@pytest.mark.parametrize("widths", [[2, 0, 1], [2, True, 1], [2, 8.0, 1], [2, 10**40, 1], [2] * 2000])
def test_bad_widths_refused(tmp_path, widths):
    path = save_model(siren(2, 1, [8]), tmp_path / "m.safetensors")
    with pytest.raises(InvalidFileError, match="widths"):
        load_model(_rewrite(path, lambda h: h.update(widths=widths)))


def test_parse_json_bounds():
    assert parse_json(b'{"a": [1, 2.5, "x"]}', "t") == {"a": [1, 2.5, "x"]}
    for text, fragment in (("1" * 5000, "number"), ("[" * 100 + "]" * 100, "nested"), ("[" * 100000, "nested"),
                           (b"\xff", "invalid"), ("{", "invalid"), ('{"a": NaN}', None)):
        if fragment is None:
            assert parse_json(text, "t")["a"] != parse_json(text, "t")["a"]  # NaN allowed by default
            with pytest.raises(InvalidFileError):
                parse_json(text, "t", allow_nan=False)
            continue
        with pytest.raises(InvalidFileError, match=fragment):
            parse_json(text, "t")
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, "t") is not None


def test_npz_header_first_refuses_huge_claims_without_allocating(tmp_path):
    import zipfile

    def npy(header: str, data: bytes = b"") -> bytes:
        text = header.encode() + b" " * (63 - len(header) % 64) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data

    members = {"W0.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }"),
               "b0.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", bytes(4)),
               "activations.npy": npy("{'descr': '<U4', 'fortran_order': False, 'shape': (1,), }",
                                      "relu".encode("utf-32-le"))}
    for name, bad in (("huge", members["W0.npy"]),
                      ("lying", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }", bytes(8))),
                      ("object", npy("{'descr': '|O', 'fortran_order': False, 'shape': (1, 1), }", bytes(8))),
                      ("tokens", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': '''")),
                      ("syntax", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,),, }"))):
        path = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(path, "w") as archive:
            for member, raw in {**members, "W0.npy": bad}.items():
                archive.writestr(member, raw)
        with pytest.raises(InvalidFileError):
            load_model(path)


def test_npz_nan_omega_refused(tmp_path):
    np.savez(tmp_path / "s.npz", W0=np.ones((3, 2)), b0=np.ones(3), W1=np.ones((1, 3)), b1=np.ones(1),
             activations=np.array(["sine", "identity"]), omega0=np.array([np.nan]))
    with pytest.raises(InvalidFileError, match="omegas"):
        load_model(tmp_path / "s.npz")


def test_render_bounds_before_allocating(tmp_path):
    from inrkit.api import render_file

    path = save_model(siren(2, 1, [8]), tmp_path / "m.safetensors", signal={"shape": [100000, 100000]})
    with pytest.raises(InvalidFileError, match="shape"):
        render_file(path, tmp_path / "out.png")
    path = save_model(siren(2, 1, [8]), tmp_path / "m.safetensors", signal={"shape": [8, 8]})
    for size in ([60000, 60000], [0, 8], [8]):
        with pytest.raises(InvalidInputError):
            render_file(path, tmp_path / "out.npy", size)
    assert render_file(path, tmp_path / "out.npy", [4, 5])["bytes"] > 0


def test_nerf_widths_bounded_before_building(tmp_path):
    from inrkit.train.checkpoint import load_checkpoint, save_checkpoint

    with pytest.raises(InvalidInputError, match="NeRF"):
        NeRFConfig(trunk_widths=[12000] * 8, feature_width=12000).validate()
    model = NeRFMLP(TINY, seed=0)
    ck = save_checkpoint(tmp_path / "ck.safetensors", model, torch.optim.Adam(model.parameters()), torch.Generator(),
                         step=1, seconds=0.0, history=[], config={})
    data = ck.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    outer = json.loads(data[8: 8 + n])
    meta = json.loads(outer["__metadata__"]["inrkit-checkpoint"])
    meta["model"]["nerf"]["trunk_widths"] = [12000] * 4
    outer["__metadata__"]["inrkit-checkpoint"] = json.dumps(meta)
    blob = json.dumps(outer).encode()
    blob += b" " * (-len(blob) % 8)
    ck.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n:])
    with pytest.raises(InvalidFileError, match="NeRF"):
        load_checkpoint(ck)


def _image(path, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size=(12, 12, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("change", ["hidden", "input", "arch"])
def test_resume_refuses_another_model_or_input(tmp_path, change):
    from inrkit.api import ModelSpec, fit_file
    from inrkit.train import FitConfig

    first, second = _image(tmp_path / "a.png", 0), _image(tmp_path / "b.png", 1)
    ck = str(tmp_path / "ck.safetensors")
    cfg = FitConfig(steps=3, progress=False, checkpoint_path=ck, checkpoint_every=1, evaluate=False)
    fit_file(first, tmp_path / "m.safetensors", ModelSpec(hidden=(8, 8)), cfg)
    resume = FitConfig(**{**cfg.__dict__, "steps": 5, "resume": True})
    spec = {"hidden": ModelSpec(hidden=(16, 16)), "input": ModelSpec(hidden=(8, 8)),
            "arch": ModelSpec(arch="relu", hidden=(8, 8))}[change]
    with pytest.raises(InvalidInputError, match="another (model|input)"):
        fit_file(second if change == "input" else first, tmp_path / "m2.safetensors", spec, resume)
    result, _ = fit_file(first, tmp_path / "m3.safetensors", ModelSpec(hidden=(8, 8)), resume)  # same: resumes
    assert result.steps == 5


def test_render_or_eval_of_a_nerf_file_is_a_clean_error(tmp_path):
    from inrkit.api import evaluate_file, render_file

    path = save_model(NeRFMLP(TINY, seed=0), tmp_path / "n.safetensors")
    with pytest.raises(InvalidInputError, match="nerf"):
        render_file(path, tmp_path / "out.png")
    np.save(tmp_path / "v.npy", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(InvalidInputError, match="nerf"):
        evaluate_file(path, tmp_path / "v.npy")
