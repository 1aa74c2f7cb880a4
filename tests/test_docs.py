"""Docs stay true: every test the docs cite exists, every doc they link exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_cited_tests_exist() -> None:
    cited = 0
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for path, name in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text):
            source = ROOT / path
            assert source.exists(), f"{doc.name} cites missing {path}"
            assert re.search(rf"def {name}\b", source.read_text()), f"{doc.name}: {path}::{name}"
            cited += 1
        for path in re.findall(r"`(tests/[\w/]+(?:\.py|/))`", text):
            assert (ROOT / path).exists(), f"{doc.name} cites missing {path}"
    assert cited >= 10


def test_relative_links_resolve() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
