"""Every relative Markdown link of README.md and docs/*.md points to an existing file, and docs/index.md lists
every page of docs/ (the manual's table of contents)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a link-like string in code is not a link)."""
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def relative_links(page: Path) -> list[str]:
    """The relative link targets of a page (no scheme, no pure #anchor), without their #anchor."""
    targets = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_link_extraction_skips_code_and_urls(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("[a](a.md) [b](https://x.org/b.md) [c](#top) `[d](d.md)`\n```\n[e](e.md)\n```\n"
                    "[f](sub/f.md#part \"title\")\n")
    assert relative_links(page) == ["a.md", "sub/f.md"]


def test_every_relative_link_resolves() -> None:
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in PAGES for target in relative_links(page)
              if not (page.parent / target).exists()]
    assert not broken, "broken relative links:\n" + "\n".join(broken)


def test_index_lists_every_page() -> None:
    index = ROOT / "docs" / "index.md"
    listed = {(index.parent / t).resolve() for t in relative_links(index)}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p != index and p.resolve() not in listed]
    assert not missing, "docs/index.md does not list: " + ", ".join(missing)
