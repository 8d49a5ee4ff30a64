"""The benchmark page keeps each benchmark's section when the other one re-renders it."""

from __future__ import annotations

from loadtests.report import replace_section, section


def test_a_section_is_replaced_in_place_and_appended_when_missing() -> None:
    page = "# Benchmarks\n\nintro\n"
    once = replace_section(page, "events", "## Events\n\nold figures\n")
    assert once.startswith(page.rstrip("\n")) and "old figures" in once
    twice = replace_section(once + "\n## Later\n", "events", "## Events\n\nnew figures\n")
    assert "old figures" not in twice and "new figures" in twice
    assert twice.index("new figures") < twice.index("## Later")
    assert twice.count("<!-- events:begin -->") == 1


def test_a_benchmark_rewrites_its_own_section_and_leaves_the_findings() -> None:
    from pathlib import Path

    import orjson

    from loadtests.report import DECIDE_SECTION, EVENTS_SECTION, render

    decide_result = (Path(__file__).parent / "data" / "decide-result.json").read_bytes()
    page = replace_section("# Benchmarks\n", DECIDE_SECTION, "## The decision path\n\nold\n")
    page += "\n### Findings\n\nwritten by people\n"
    page = replace_section(page, EVENTS_SECTION, "## Events\n\npinned figures\n")
    fresh = replace_section(page, DECIDE_SECTION, render(orjson.loads(decide_result)))
    assert "\nold\n" not in fresh and "### Machine" in section(fresh, DECIDE_SECTION)
    assert "written by people" in fresh and "pinned figures" in fresh
    assert fresh.index("### Machine") < fresh.index("written by people") < fresh.index("pinned")
