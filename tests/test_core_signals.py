"""Signals: loaders, normalisation, splits, metrics, rendering, bad input."""
import base64
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.metrics import chamfer_distance, iou, normal_consistency, psnr, ssim
from inrkit.models import siren
from inrkit.signals import (
    AnalyticSignal,
    FieldSignal,
    ImageSignal,
    SDFSignal,
    VolumeSignal,
    grid_coords,
    load_signal,
    read_vti,
    render_model,
    write_vti,
)


def test_grid_coords_span_and_order():
    c = grid_coords([3, 2])
    assert c.shape == (6, 2)
    assert torch.allclose(c[0], torch.tensor([-1.0, -1.0])) and torch.allclose(c[-1], torch.tensor([1.0, 1.0]))
    assert torch.allclose(c[1], torch.tensor([-1.0, 1.0]))  # last axis varies fastest


def test_image_normalisation_and_split(tiny_image, tmp_path):
    Image.fromarray(tiny_image.astype(np.uint8)).save(tmp_path / "a.png")
    sig = load_signal(tmp_path / "a.png", test_fraction=0.1, seed=3)
    assert sig.shape == (24, 32) and sig.out_dim == 3
    assert sig.values.min() >= -1 and sig.values.max() <= 1
    assert sig.num_samples() + sig.test_idx.numel() == 24 * 32
    assert set(sig.train_idx.tolist()).isdisjoint(sig.test_idx.tolist())
    raw = sig.denormalize(sig.values).reshape(24, 32, 3)
    assert np.allclose(raw, tiny_image.astype(np.uint8), atol=1e-3)


def test_image_crop_and_grey(tmp_path):
    Image.fromarray((np.arange(100).reshape(10, 10) * 2).astype(np.uint8)).save(tmp_path / "g.png")
    sig = load_signal(tmp_path / "g.png", crop=(2, 6, 3, 9))
    assert sig.shape == (4, 6) and sig.out_dim == 1
    with pytest.raises(InvalidInputError, match="crop"):
        load_signal(tmp_path / "g.png", crop=(0, 20, 0, 5))


@pytest.mark.parametrize("size", [(1, 1), (1, 5)])
def test_tiny_image_rejected(tmp_path, size):
    Image.fromarray(np.zeros(size, np.uint8)).save(tmp_path / "t.png")
    with pytest.raises(InvalidInputError, match="at least 2x2"):
        load_signal(tmp_path / "t.png")


def test_not_an_image(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InvalidFileError):
        load_signal(tmp_path / "x.png")
    (tmp_path / "x.xyz").write_text("1 2 3")
    with pytest.raises(InvalidFileError, match="unsupported"):
        load_signal(tmp_path / "x.xyz")


def test_volume_npy_and_nan(tmp_path):
    vol = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    np.save(tmp_path / "v.npy", vol)
    sig = load_signal(tmp_path / "v.npy")
    assert isinstance(sig, VolumeSignal) and sig.shape == (6, 5, 4)
    vol[1, 2, 3] = np.nan
    np.save(tmp_path / "n.npy", vol)
    with pytest.raises(InvalidInputError, match="NaN"):
        load_signal(tmp_path / "n.npy")
    np.save(tmp_path / "f.npy", vol[..., 0])
    assert isinstance(load_signal(tmp_path / "f.npy"), FieldSignal)


def test_raw_volume_dims(tmp_path):
    vol = np.arange(4 * 3 * 2, dtype=np.uint8).reshape(2, 3, 4)  # z, y, x on disk
    vol.tofile(tmp_path / "v.raw")
    sig = load_signal(tmp_path / "v.raw", dims=(4, 3, 2), dtype="uint8")
    assert sig.shape == (4, 3, 2)
    raw = sig.denormalize(sig.values).reshape(4, 3, 2)
    assert raw[1, 2, 1] == vol[1, 2, 1]  # x=1, y=2, z=1
    with pytest.raises(InvalidInputError, match="bytes do not match"):
        load_signal(tmp_path / "v.raw", dims=(5, 3, 2), dtype="uint8")
    with pytest.raises(InvalidInputError, match="dims"):
        load_signal(tmp_path / "v.raw")


def test_vti_round_trip_and_compressed(tmp_path):
    vol = np.random.default_rng(1).random((5, 4, 3)).astype(np.float32)
    write_vti(tmp_path / "v.vti", vol)
    assert np.array_equal(read_vti(tmp_path / "v.vti"), vol)
    data = np.ascontiguousarray(vol.transpose()).tobytes()  # VTK's x-fastest order
    comp = zlib.compress(data)
    header = base64.b64encode(struct.pack("<4I", 1, len(data), len(data), len(comp))).decode()
    text = (f'<VTKFile type="ImageData" version="0.1" byte_order="LittleEndian" header_type="UInt32" '
            f'compressor="vtkZLibDataCompressor"><ImageData WholeExtent="0 4 0 3 0 2"><Piece Extent="0 4 0 3 0 2">'
            f'<PointData><DataArray type="Float32" Name="a" format="binary">{header}{base64.b64encode(comp).decode()}'
            f'</DataArray></PointData></Piece></ImageData></VTKFile>')
    (tmp_path / "c.vti").write_text(text)
    assert np.array_equal(read_vti(tmp_path / "c.vti"), vol)
    (tmp_path / "t.vti").write_text(text[: len(text) // 2])
    with pytest.raises(InvalidFileError):
        read_vti(tmp_path / "t.vti")


def test_shared_volumes(shared_data):
    h = load_signal(shared_data / "volumes" / "hydrogen.vti")
    assert h.shape == (64, 64, 64)
    p = load_signal(shared_data / "volumes" / "ironProt.vtk")
    assert p.shape == (68, 68, 68) and p.offset == 127.5


def test_analytic_signal():
    sig = AnalyticSignal("sin-radial", params={"alpha": 0.1}, eval_size=16)
    x = torch.tensor([[0.0, 0.0], [0.6, 0.8]])
    assert torch.allclose(sig.true_values(x)[:, 0], torch.sin(1 / (0.1 + torch.tensor([0.0, 1.0]))))
    coords, values = sig.train_batch(64, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert coords.shape == (64, 2) and coords.abs().max() <= 1 and values.shape == (64, 1)
    with pytest.raises(InvalidInputError):
        AnalyticSignal("nope")


def test_sdf_signal_loss_and_mesh(tmp_path):
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=2.0)
    sphere.export(tmp_path / "s.ply")
    sig = SDFSignal.from_file(tmp_path / "s.ply", num_points=500, eval_resolution=16)
    assert np.allclose(np.linalg.norm(sig.points.numpy(), axis=1), 0.9, atol=0.02)
    coords, targets = sig.train_batch(100, torch.Generator().manual_seed(0), torch.device("cpu"))
    m = siren(3, 1, [16, 16])
    loss, mse = sig.loss(m, coords, targets)
    assert loss.item() > 0 and mse is None
    loss.backward()
    assert m.weights[0].grad is not None


def test_metrics():
    a = np.zeros((4, 4))
    assert psnr(a + 0.1, a, data_range=1.0) == pytest.approx(20.0)
    img = np.random.default_rng(0).random((16, 16, 3)) * 255
    assert ssim(img, img, 255) == pytest.approx(1.0)
    assert ssim(img, 255 - img, 255) < 0.5
    pts = np.random.default_rng(0).random((100, 3))
    assert chamfer_distance(pts, pts) == 0.0 and chamfer_distance(pts, pts + 0.1) > 0.05
    nrm = np.tile([0.0, 0.0, 1.0], (100, 1))
    assert normal_consistency(pts, nrm, pts, -nrm) == pytest.approx(1.0)
    assert iou(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(1 / 3)


def test_render_from_metadata(tmp_path):
    m = siren(2, 3, [8])
    sig = ImageSignal(np.zeros((6, 8, 3), np.float32) + 100)
    out = render_model(m, sig.metadata(), tmp_path / "r.png", (12, 16))
    assert np.asarray(Image.open(out)).shape == (12, 16, 3)
    field = FieldSignal(np.zeros((5, 5), np.float32))
    assert np.load(render_model(siren(2, 1, [8]), field.metadata(), tmp_path / "f.npy")).shape == (5, 5)
    vol = VolumeSignal(np.zeros((3, 3, 3), np.float32))
    assert read_vti(render_model(siren(3, 1, [8]), vol.metadata(), tmp_path / "v.vti", (4, 5, 6))).shape == (4, 5, 6)
    with pytest.raises(InvalidInputError):
        render_model(m, sig.metadata(), tmp_path / "r.jpg")


def _zlib_vti(vol: np.ndarray, vtype: str, block: int) -> str:
    data = np.ascontiguousarray(vol.transpose()).tobytes()
    blocks = [data[i: i + block] for i in range(0, len(data), block)]
    comp = [zlib.compress(b) for b in blocks]
    last = len(blocks[-1]) if len(blocks[-1]) != block else 0
    head = struct.pack(f"<{3 + len(comp)}Q", len(comp), block, last, *(len(c) for c in comp))
    nx, ny, nz = vol.shape
    ext = f"0 {nx - 1} 0 {ny - 1} 0 {nz - 1}"
    return (f'<VTKFile type="ImageData" version="0.1" byte_order="LittleEndian" header_type="UInt64" '
            f'compressor="vtkZLibDataCompressor"><ImageData WholeExtent="{ext}"><Piece Extent="{ext}"><PointData>'
            f'<DataArray type="{vtype}" Name="a" format="binary">{base64.b64encode(head).decode()}'
            f'{base64.b64encode(b"".join(comp)).decode()}</DataArray></PointData></Piece></ImageData></VTKFile>')


@pytest.mark.parametrize("vtype, dtype, block", [("Float32", np.float32, 1 << 15), ("Float64", np.float64, 3 << 10),
                                                 ("Float32", np.float32, 0), ("UInt8", np.uint8, 5000)])
def test_vti_zlib_blocks_inflate_exactly(tmp_path, vtype, dtype, block):
    """Multi-block and single-block (over the 4 MiB inflate piece) zlib data decode to the same values."""
    rng = np.random.default_rng(2)
    vol = (rng.random((160, 96, 70)) * 200).astype(dtype)
    block = block or vol.nbytes  # one block larger than a piece
    (tmp_path / "z.vti").write_text(_zlib_vti(vol, vtype, block))
    assert np.array_equal(read_vti(tmp_path / "z.vti"), vol.astype(np.float32))


def test_vti_refuses_entities_and_inconsistent_blocks(tmp_path):
    vol = np.zeros((4, 4, 4), np.float32)
    text = _zlib_vti(vol, "Float32", 1 << 15)
    (tmp_path / "e.vti").write_text('<!DOCTYPE x [<!ENTITY a "b">]>' + text)
    with pytest.raises(InvalidFileError, match="DOCTYPE"):
        read_vti(tmp_path / "e.vti")
    (tmp_path / "w.vti").write_text(text.replace('WholeExtent="0 3 0 3 0 3"', 'WholeExtent="0 3 0 3 0 4"'))
    with pytest.raises(InvalidFileError, match="do not match"):
        read_vti(tmp_path / "w.vti")


def test_huge_image_header_is_a_file_error(tmp_path):
    header = struct.pack(">IIBBBBB", 20000, 10000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    idat = zlib.compress(b"\0" * 1000)
    idat = struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    (tmp_path / "h.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + idat)
    with pytest.raises(InvalidFileError, match="too large"):
        load_signal(tmp_path / "h.png")
