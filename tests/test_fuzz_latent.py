"""Hostile ``latent`` (latent-grid) ``.inrz`` files: every one is decoded (``inrkit decode``'s path, PNG included) or
refused with :class:`~inrkit.errors.InvalidFileError` within 2 s of CPU time and 512 MiB of memory.

Each case runs in a forked child whose address space is capped at its size at the fork plus 512 MiB
(``RLIMIT_AS``); the child reports its outcome, its CPU time (``time.process_time``) and its peak resident
memory above its start (``VmHWM`` after resetting it). The crafted files are *valid* files (correct checksums,
consistent headers) that ask for the most work their bytes allow: empty and short latent streams at 2048^2,
14-bit latents at 1024^2 and 2048^2, huge and degenerate shapes, every level and network at its largest, a
64 KB file at the largest image it may have with an escape in every wavefront; then random mutations of a
real small file. ``python tests/test_fuzz_latent.py`` prints every case's outcome, CPU seconds and MB.
"""
from __future__ import annotations

import os
import pickle
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import constriction  # noqa: F401 - imported before the children's memory limits, as everything they run
import numpy as np
import pytest
from PIL import Image  # noqa: F401

import inrkit.compress.encode.latent  # noqa: F401 - (torch)
from inrkit import limits
from inrkit.compress.decode import latent as lc
from inrkit.compress.decode.container import pack, unpack
from inrkit.compress.encode.image import decode_image
from inrkit.errors import InvalidFileError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses fork, RLIMIT_AS and /proc")

MEMORY = 512 * 2**20  # address space a case may add
CPU_SECONDS = 2.0  # CPU time a case may take


# ------------------------------------------------------------------ forked, limited children
def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def forked(fn: Callable[[], Any]) -> tuple[str, str, float, int]:
    """Run ``fn`` in a forked child under RLIMIT_AS (its size + :data:`MEMORY`): ``(outcome, message, cpu_s,
    peak_bytes)``, outcome ``decoded``, ``refused`` (InvalidFileError) or ``unclean`` (anything else)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.close(read_end)
            os.environ["OMP_NUM_THREADS"] = "1"
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset the peak-RSS mark
            except OSError:
                pass
            base = _status("VmRSS")
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            resource.setrlimit(resource.RLIMIT_AS, (_status("VmSize") + MEMORY, hard))
            resource.setrlimit(resource.RLIMIT_CPU, (60, resource.getrlimit(resource.RLIMIT_CPU)[1]))
            t0 = time.process_time()
            try:
                fn()
                result = ("decoded", "")
            except InvalidFileError as exc:
                result = ("refused", str(exc))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                result = ("unclean", f"{type(exc).__name__}: {str(exc)[:300]}")
            cpu = time.process_time() - t0
            with os.fdopen(write_end, "wb") as out:
                out.write(pickle.dumps(result + (cpu, _status("VmHWM") - base)))
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        raw = inp.read()
    os.waitpid(pid, 0)
    assert raw, "the child died (killed by a limit?)"
    return pickle.loads(raw)


def decode_through_cli_path(data: bytes, folder: Path) -> Callable[[], None]:
    """What ``inrkit decode FILE -o OUT.png`` does (file read, checks, decode, PNG), in the child."""
    def run() -> None:
        src = folder / "in.inrz"
        src.write_bytes(data)
        decode_image(src, folder / "out.png")
    return run


# ------------------------------------------------------------------ crafted files
def _arm(j: int = 0, hidden: tuple[int, ...] = (), fw: int = 8) -> lc.FixedArm:
    """An ARM predicting mode 0 and scale index ``j`` everywhere (zero weights, bias only)."""
    dims = [len(lc.CONTEXT), *hidden, 2]
    ws = [np.zeros((dims[i + 1], dims[i]), np.int64) for i in range(len(dims) - 1)]
    bs = [np.zeros(d, np.int64) for d in dims[1:]]
    bs[-1][1] = 32 * j * (1 << fw) // 256  # j = (8 (b << 8 >> fw) + 128) >> 8
    return lc.FixedArm(ws, bs, fw)


def _synth(levels: int, hidden: tuple[int, ...] = (40,), seed: int = 0) -> tuple[list, list]:
    """A synthesis with ``hidden`` layers; in layers wider than 64 a few nonzero weights (a small file, the
    same work)."""
    rng = np.random.default_rng(seed)
    dims = [levels, *hidden, 3]
    ws = [np.rint(rng.normal(0, 0.3, (dims[i + 1], dims[i])) * 256 * (rng.random((dims[i + 1], dims[i]))
                                                                      < (1.0 if max(dims) <= 64 else 0.01))) / 256
          for i in range(len(dims) - 1)]
    bs = [np.rint(rng.normal(0, 0.1, d) * 256) / 256 for d in dims[1:]]
    return ws, bs


def crafted(shape: tuple[int, int], levels: int = 7, *, top: int = 0, arm: lc.FixedArm | None = None,
            hidden: tuple[int, ...] = (40,), escapes: bool = False, pad_to: int = 0) -> bytes:
    """A valid grid file of ``shape``: zero latents except ``top`` at (0, 0) (its magnitude sets the bit
    depth), with ``escapes`` one escaped latent in every wavefront of the finest level; the latent stream
    padded with zero bytes to make the file ``pad_to`` bytes (a decoder never reads them)."""
    shapes = lc.level_shapes(*shape, levels)
    latents = [np.zeros(s, np.int64) for s in shapes]
    latents[0][0, 0] = top
    if escapes:
        latents[0][:, 0] = 2 * lc.WINDOW  # wavefronts 3 y
        latents[0][0, :] = 2 * lc.WINDOW  # wavefronts x
    sw, sb = _synth(levels, hidden)
    img = lc.LatentImage(shape, 3, latents, arm or _arm(), sw, sb, 8, {"kind": "image"})
    data = lc.write(img)
    if pad_to > len(data):
        header, sections = unpack(data)
        header.pop("sizes", None)
        stream, extra = sections[0], pad_to - len(data)
        for _ in range(3):  # (the header's section sizes may grow by a digit)
            data = pack(header, [stream + bytes(extra), *sections[1:]], version=2)
            extra += pad_to - len(data)
    return data


def with_header(data: bytes, stream: bytes | None = None, **changes: Any) -> bytes:
    """``data`` with header fields (``params`` merged) and the latent stream replaced, repacked (valid checksum)."""
    header, sections = unpack(data)
    header.pop("sizes", None)
    params = {**header["params"], **changes.pop("params", {})}
    header = {**header, **changes, "params": params}
    if stream is not None:
        sections[0] = stream
    return pack(header, sections, version=2)


def _largest_for(file_bytes: int, levels: int = 7, hidden: tuple[int, ...] = (40,),
                 arm_hidden: tuple[int, ...] = ()) -> int:
    """The side of the largest square image a file of ``file_bytes`` (at most 64 KB) may ask for."""
    side = int((limits.INRZ_GRID_PIXELS_FREE + limits.INRZ_GRID_PIXELS_PER_BYTE * file_bytes) ** 0.5)
    budget = limits.INRZ_GRID_WORK_FREE + limits.INRZ_GRID_WORK_PER_BYTE * file_bytes
    while lc.decode_cost(lc.level_shapes(side, side, levels), list(hidden), list(arm_hidden), 3) > budget:
        side -= 8
    return side


def crafted_cases() -> dict[str, Callable[[], bytes]]:
    """Name -> builder of each hostile file."""
    small = lambda: crafted((64, 48))  # noqa: E731
    side64k = _largest_for(64 * 1024)
    big = {"hidden": (256, 256, 256, 256), "arm_hidden": (64, 64, 64)}
    side_big = _largest_for(64 * 1024, 12, **big)
    return {
        "empty stream, 2048^2": lambda: with_header(small(), stream=b"", shape=[2048, 2048]),
        "20-byte stream, 2048^2": lambda: with_header(small(), stream=bytes(20), shape=[2048, 2048]),
        "short stream, 1024^2, 12 levels": lambda: with_header(small(), stream=bytes(40), shape=[1024, 1024],
                                                               params={"levels": 12, "hidden": [40]}),
        "14-bit latents, 1024^2": lambda: crafted((1024, 1024), top=(1 << 13) - 1),
        "14-bit latents, 2048^2": lambda: crafted((2048, 2048), top=(1 << 13) - 1),
        "14-bit header, 2-bit stream, 1024^2": lambda: with_header(crafted((1024, 1024)), params={"bits": 14}),
        "huge shape 32768^2": lambda: with_header(small(), shape=[32768, 32768]),
        "strip 8 x 32768": lambda: crafted((8, 32768)),
        "strip 32768 x 8": lambda: crafted((32768, 8)),
        "12 levels, 4x256 synthesis, 3x64 ARM, 512^2": lambda: crafted(
            (512, 512), 12, hidden=(256, 256, 256, 256), arm=_arm(0, (64, 64, 64))),
        "12 levels, 4x256 synthesis, 3x64 ARM, 64 KB at 1024^2": lambda: crafted(
            (1024, 1024), 12, hidden=(256, 256, 256, 256), arm=_arm(0, (64, 64, 64)), pad_to=64 * 1024),
        f"64 KB, {side64k}^2, an escape per wavefront": lambda: crafted(
            (side64k, side64k), escapes=True, pad_to=64 * 1024),
        f"64 KB, {side_big}^2, 12 levels, 4x256 synthesis, 3x64 ARM": lambda: crafted(
            (side_big, side_big), 12, hidden=big["hidden"], arm=_arm(0, big["arm_hidden"]), pad_to=64 * 1024),
        f"64 KB, {side64k}^2, 14-bit latents": lambda: crafted(
            (side64k, side64k), top=(1 << 13) - 1, pad_to=64 * 1024),
    }


CASES = crafted_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_crafted_file_is_decoded_or_refused_within_limits(name: str, tmp_path: Path) -> None:
    data = CASES[name]()
    outcome, message, cpu, peak = forked(decode_through_cli_path(data, tmp_path))
    assert outcome in ("decoded", "refused"), message
    assert cpu < CPU_SECONDS, f"{name}: {cpu:.2f} s of CPU ({outcome})"
    assert peak < MEMORY, f"{name}: {peak / 2**20:.0f} MiB"
    if outcome == "refused":
        assert "\n" not in message


def test_crafted_files_are_refused_from_the_header() -> None:
    """The files that ask more than their bytes justify are refused before any latent is decoded (the cheap
    checks name the bound); the ones inside the bounds decode."""
    def refusal(data: bytes) -> str:
        with pytest.raises(InvalidFileError) as err:
            lc.read(data)
        return str(err.value)

    assert "latent stream" in refusal(CASES["empty stream, 2048^2"]())
    assert "latent stream" in refusal(CASES["20-byte stream, 2048^2"]())
    assert "latent stream" in refusal(CASES["huge shape 32768^2"]())
    assert "an image of 4194304 pixels, more than" in refusal(CASES["14-bit latents, 2048^2"]())
    assert "s of CPU, more than" in refusal(CASES["strip 32768 x 8"]())
    assert "s of CPU, more than" in refusal(CASES["12 levels, 4x256 synthesis, 3x64 ARM, 512^2"]())
    img = lc.read(CASES["14-bit latents, 1024^2"]())
    assert int(img.latents[0][0, 0]) == (1 << 13) - 1 and int(np.abs(img.latents[0]).sum()) == (1 << 13) - 1


def test_old_format_is_refused_with_a_one_line_message() -> None:
    data = crafted((16, 16))
    header, sections = unpack(data)
    header.pop("sizes", None)
    header["params"].pop("v")
    with pytest.raises(InvalidFileError, match="re-encode") as err:
        lc.read(pack(header, sections, version=2))
    assert "\n" not in str(err.value)


def test_synthesis_exponents_are_checked(tmp_path: Path) -> None:
    """Format version 3 lists one synthesis exponent per layer's weights and one for the biases: a list of another
    length, an exponent out of range, an integer in a version-3 file or a list in a version-2 file is refused in
    one line, within the time and memory of every case; version-2 files (one integer) decode as before."""
    data = crafted((16, 16))
    assert unpack(data)[0]["params"]["q"] == [8, 8, 8]  # 2 synthesis layers: 2 weight exponents, the biases'
    for q, v in (([8, 8], 3), ([8, 8, 8, 8], 3), ([8, 8, 25], 3), ([-1, 8, 8], 3), (8, 3), ([8, 8, 8], 2),
                 ([8, 8.5, 8], 3), ([8] * 1000, 3)):
        bad = with_header(data, params={"q": q, "v": v})
        outcome, message, cpu, peak = forked(decode_through_cli_path(bad, tmp_path))
        assert outcome == "refused" and "\n" not in message, (q, v, message)
        assert cpu < CPU_SECONDS and peak < MEMORY
    v2 = lc.read(with_header(data, params={"q": 8, "v": 2}))
    v3 = lc.read(data)
    assert np.array_equal(v2.render(), v3.render())  # the same exponents, either way
    mixed = lc.read(with_header(data, params={"q": [6, 9, 7]}))  # other steps decode to other weights
    assert mixed.steps() == [6, 7, 9, 7] and not np.array_equal(mixed.synth_w[0], v3.synth_w[0])


def test_stream_bound_holds_for_the_cheapest_latents() -> None:
    """All-zero latents under the narrowest model cost at least MIN_BITS_PER_LATENT each (the FLOOR)."""
    for side, levels in ((256, 7), (700, 3)):
        shapes = lc.level_shapes(side, side, levels)
        latents = [np.zeros(s, np.int64) for s in shapes]
        stream = lc.encode_latents(latents, _arm(0), 2)
        count = sum(r * c for r, c in shapes)
        assert 8 * len(stream) >= count * lc.MIN_BITS_PER_LATENT
        back = lc.decode_latents(stream, shapes, _arm(0), 2)
        assert all(not g.any() for g in back)


def test_mutations_of_a_real_file_are_decoded_or_refused(tmp_path: Path) -> None:
    from inrkit.compress.encode.latent import LatentOptions, encode_pixels

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56] / 56.0
    pixels = np.stack([np.sin(6 * xx) * 0.5 + 0.5, np.cos(4 * yy) * 0.5 + 0.5, xx * yy], -1) * 255
    enc = encode_pixels(pixels.astype(np.float32), LatentOptions(steps=40, lmbda=3000, hidden=(8,), arm_hidden=(8,)))
    data = enc.data  # a real encoder output
    assert all(np.array_equal(a, b) for a, b in zip(lc.read(data).latents, enc.latents))
    header, sections = unpack(data)
    header.pop("sizes", None)
    variants = []
    for _ in range(24):  # flipped bits in the latent stream (valid checksum: decodes to other latents or refused)
        s = bytearray(sections[0])
        s[int(rng.integers(len(s)))] ^= 1 << int(rng.integers(8))
        variants.append(pack(header, [bytes(s), *sections[1:]], version=2))
    for key, values in (("bits", [2, 3, 14, 15]), ("levels", [1, 4, 6, 12]), ("fw", [2, 12]),
                        ("q", [0, 24, [0, 0], [24, 24], [0, 24, 3], [8] * 40, "8"]), ("v", [2, 4]),
                        ("hidden", [[], [256], [256] * 4]), ("a", [[], [64] * 3]), ("sb", [2, 16]), ("ab", [2, 16])):
        for v in values:
            variants.append(with_header(data, params={key: v}))
    for shape in ([1, 1], [1, 4096], [4096, 1], [3000, 3000], [41, 56]):
        variants.append(with_header(data, shape=shape))
    variants += [data[:n] for n in (0, 10, len(data) // 2, len(data) - 1)]
    outcomes = []
    for i, v in enumerate(variants):
        folder = tmp_path / str(i)
        folder.mkdir()
        outcome, message, cpu, peak = forked(decode_through_cli_path(v, folder))
        assert outcome in ("decoded", "refused"), message
        assert cpu < CPU_SECONDS and peak < MEMORY, (i, cpu, peak)
        outcomes.append(outcome)
    assert "refused" in outcomes and "decoded" in outcomes


if __name__ == "__main__":  # the numbers: every crafted case's outcome, CPU time and peak memory
    import tempfile

    for name in sorted(CASES):
        data = CASES[name]()
        with tempfile.TemporaryDirectory() as folder:
            outcome, message, cpu, peak = forked(decode_through_cli_path(data, Path(folder)))
        print(f"{name:55s} {len(data):7d} B  {outcome:8s} {cpu:6.2f} s {peak / 2**20:6.0f} MB  {message[:110]}")
