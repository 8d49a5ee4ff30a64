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


def test_the_decide_page_carries_the_events_section_over() -> None:
    old = replace_section("# old decide page\n", "events", "## Events\n\nkept\n")
    kept = section(old, "events")
    assert kept.startswith("<!-- events:begin -->") and "kept" in kept
    assert section("# no section\n", "events") == ""


def test_a_decide_render_keeps_both_events_sections() -> None:
    from pathlib import Path

    import orjson

    from loadtests.report import EVENTS_SECTION, EVENTS_UNPINNED_SECTION, render

    decide_result = (Path(__file__).parent / "data" / "decide-result.json").read_bytes()

    page = replace_section("# old\n", EVENTS_SECTION, "## Events\n\npinned figures\n")
    page = replace_section(page, EVENTS_UNPINNED_SECTION, "### Unpinned\n\nfree figures\n")
    fresh = render(orjson.loads(decide_result), page)
    assert "# old" not in fresh  # the decide part is rewritten
    assert "pinned figures" in fresh and "free figures" in fresh
    assert fresh.index("pinned figures") < fresh.index("free figures")
