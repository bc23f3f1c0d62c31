"""The structure of ``inrkit.compress``: the decoder package imports no torch and nothing of the encoder package
(checked on the source, lazy imports included), and the two codec registries dispatch every codec."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

COMPRESS = Path(__file__).resolve().parents[1] / "src" / "inrkit" / "compress"
# what the decoder package may import besides the standard library and itself
DECODER_MAY_IMPORT = {"numpy", "brotli", "constriction", "inrkit.errors", "inrkit.limits", "inrkit.registry"}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` blocks (annotations only: never run)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, at any level (lazy imports inside functions included)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path.name}: relative import"
            found.add(node.module or "")
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _allowed(name: str) -> bool:
    top = name.split(".")[0]
    if top in sys.stdlib_module_names or name.startswith("inrkit.compress.decode"):
        return True
    return any(name == m or name.startswith(m + ".") for m in DECODER_MAY_IMPORT)


def test_decoder_package_imports_no_torch_and_no_encoder() -> None:
    files = sorted((COMPRESS / "decode").glob("*.py"))
    assert {f.stem for f in files} >= {"container", "entropy", "coding", "layout", "dictionary", "network",
                                       "decoder", "latent"}
    bad = {f"{f.name}: {name}" for f in files for name in _imports(f) if not _allowed(name)}
    assert not bad, f"the decoder package imports {sorted(bad)}"


def test_the_import_walk_sees_lazy_imports(tmp_path: Path) -> None:
    """The check is not vacuous: a lazy import of torch or of the encoder package inside a function is found."""
    f = tmp_path / "m.py"
    f.write_text("def g():\n    import torch\n    from inrkit.compress.encode.api import encode_image\n")
    assert {"torch", "inrkit.compress.encode.api"} <= {n for n in _imports(f) if not _allowed(n)}


def test_the_decoder_package_loads_with_torch_blocked(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "import pkgutil, importlib, inrkit.compress.decode as d\n"
            "for m in pkgutil.iter_modules(d.__path__): importlib.import_module(f'inrkit.compress.decode.{m.name}')\n"
            "print(sorted(k for k in sys.modules if k.startswith('inrkit.compress.encode')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_two_registries() -> None:
    from inrkit.compress import DECODERS, IMAGE_CODECS, NETWORK_CODECS, ImageCodec, NetworkCodec

    assert IMAGE_CODECS.names() == ("latent", "sinr", "quant", "coin")
    assert NETWORK_CODECS.names() == ("sinr", "quant", "coin")
    assert all(isinstance(IMAGE_CODECS.get(n), ImageCodec) for n in IMAGE_CODECS)
    assert all(isinstance(NETWORK_CODECS.get(n), NetworkCodec) for n in NETWORK_CODECS)
    assert set(NETWORK_CODECS.names()) <= set(DECODERS.names())  # every network codec decodes standalone
    assert "grid" not in IMAGE_CODECS and "grid" not in NETWORK_CODECS  # the architecture's name only


def test_files_name_their_image_codec_and_old_names_map() -> None:
    from inrkit.compress import image_codec_of
    from inrkit.compress.decode import latent as lc
    from inrkit.compress.encode.image import LatentCodec, NetworkImageCodec
    from inrkit.errors import InvalidFileError

    assert isinstance(image_codec_of({"format": lc.FORMAT, "codec": "latent"}), LatentCodec)
    assert isinstance(image_codec_of({"format": lc.FORMAT, "codec": "grid"}), LatentCodec)  # older files
    assert image_codec_of({"format": "inrz-mlp", "codec": "sinr"}).name == "sinr"
    assert isinstance(image_codec_of({"format": "inrz-mlp", "codec": "quant"}), NetworkImageCodec)
    with pytest.raises(InvalidFileError, match="unknown codec"):
        image_codec_of({"format": "inrz-mlp", "codec": "nope"})


def test_no_string_dispatch_on_codec_names() -> None:
    """The commands and the workflows read the registries; no ``codec == "..."`` test remains."""
    sources = [COMPRESS.parent / "cli" / "compress.py", COMPRESS.parent / "cli" / "evalcodec.py",
               *COMPRESS.rglob("*.py")]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and isinstance(node.left, (ast.Name, ast.Attribute)):
                name = node.left.id if isinstance(node.left, ast.Name) else node.left.attr
                consts = [c.value for c in node.comparators if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                assert not (name == "codec" and consts), f"{path.name}:{node.lineno}: codec compared with {consts}"


def test_a_network_file_given_to_the_latent_decoder_and_back(tmp_path: Path) -> None:
    import torch

    from inrkit.compress import compress_model, decode_model
    from inrkit.compress.decode import latent as lc
    from inrkit.errors import InvalidFileError
    from inrkit.models import siren

    data = compress_model(siren(2, 3, [8], generator=torch.Generator().manual_seed(0)), "coin")
    with pytest.raises(InvalidFileError, match="not a latent"):
        lc.read(data)
    rng = np.random.default_rng(0)
    img = lc.LatentImage((5, 6), 3, [rng.integers(-2, 3, s) for s in lc.level_shapes(5, 6, 2)],
                         lc.FixedArm([rng.integers(-50, 50, (4, 12)), rng.integers(-50, 50, (2, 4))],
                                     [np.zeros(4, np.int64), np.array([0, 300])], fw=8),
                         [np.ones((4, 2)) / 4, np.ones((3, 4)) / 8], [np.zeros(4), np.zeros(3)], 4, {"kind": "image"})
    with pytest.raises(InvalidFileError, match="latent-grid image, not a network"):
        decode_model(lc.write(img))
