"""Test helper: rewrite the inrkit header of a model file, to craft altered or hostile files."""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Callable

from inrkit.models.io import digest, expected_shapes


def rewrite_header(path: Path, edit: Callable[[dict], Any], *, resign: bool, out: Path,
                   text: str | None = None) -> Path:
    """Write ``path`` with its inrkit header changed to ``out``.

    Args:
        edit: changes the parsed header in place.
        resign: recompute the (v2) checksum over the edited header, so only the content is hostile.
        out: where the crafted file goes.
        text: the header text to store verbatim instead of the edited header (e.g. malformed JSON).
    """
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    outer = json.loads(data[8: 8 + n])
    meta = json.loads(outer["__metadata__"]["inrkit"])
    edit(meta)
    if resign:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        meta["sha256"] = digest(tensors, list(expected_shapes(meta)), meta)
    outer["__metadata__"]["inrkit"] = text if text is not None else json.dumps(meta)
    blob = json.dumps(outer).encode()
    blob += b" " * (-len(blob) % 8)
    out.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n:])
    return out
