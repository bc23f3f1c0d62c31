"""Build the API reference (HTML, from the docstrings) with pdoc: every public module of inrkit.

    .venv/bin/pip install -q -e '.[docs]' && .venv/bin/python docs/build_api.py -o build/api

Open ``build/api/index.html``. Google-style ``Args:`` sections (those that also generate the CLI's help) are
rendered as parameter lists.
"""
from __future__ import annotations

import argparse
import pkgutil
import sys
from pathlib import Path


def public_modules(package: str = "inrkit") -> list[str]:
    """``package`` and every module under it whose dotted name has no part starting with ``_``."""
    root = __import__(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def build(output: Path, modules: list[str] | None = None) -> Path:
    """Write the HTML reference of ``modules`` (default: :func:`public_modules`) into ``output``."""
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="google", search=True, show_source=False)
    pdoc.pdoc(*(modules or public_modules()), output_directory=output)
    return output / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("build/api"), help="output folder")
    args = parser.parse_args(argv)
    print(build(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
