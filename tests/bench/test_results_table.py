"""The README's and the docs' results tables are what benchmarks/results_table.py renders from the committed JSONs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bench.test_headline import _load

REPO = Path(__file__).resolve().parents[2]


def _block(text: str, bench) -> str:
    start = text.index(bench.BEGIN)
    return text[start:text.index(bench.END) + len(bench.END)]


@pytest.fixture(scope="module")
def bench():
    module = _load("results_table")
    missing = [name for name in module.SOURCES if not (module.RESULTS / name).is_file()]
    if missing:
        pytest.skip(f"benchmarks/results/{missing[0]} not committed")
    return module


@pytest.mark.parametrize("page, links", [("README.md", True), ("docs/results.md", False)])
def test_the_quoted_table_is_the_committed_json(bench, page, links) -> None:
    text = (REPO / page).read_text()
    assert _block(text, bench) == bench.table(bench.load(), links=links), \
        f"{page}'s results table is stale: paste `python benchmarks/results_table.py {'--table' if links else '--docs'}`"


def test_a_changed_json_changes_the_table(bench) -> None:
    reports = bench.load()
    reports["headline.json"] = {**reports["headline.json"], "miou_median": 12.345}
    assert "12.35 mIoU against" in bench.table(reports)


def test_every_json_the_readme_links_is_committed() -> None:
    readme = (REPO / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        assert (REPO / target).exists(), f"README links {target}, which does not exist"


def test_the_readme_is_short() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


def test_every_result_file_the_docs_name_is_committed() -> None:
    """A figure in the docs' prose names its JSON; a renamed or deleted result must not leave a dangling source."""
    named = set()
    for page in (REPO / "docs").rglob("*.md"):
        named |= {(page, m) for m in re.findall(r"benchmarks/results/[\w./-]+\.(?:json|png)", page.read_text())}
    assert named
    missing = sorted(f"{page.relative_to(REPO)}: {m}" for page, m in named if not (REPO / m).exists())
    assert not missing, f"the docs name results that are not committed: {missing[:5]}"
