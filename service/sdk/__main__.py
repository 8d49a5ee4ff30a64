"""``python -m service.sdk``: minify persona.js into persona.min.js and print its size and hash."""

from __future__ import annotations

from service.sdk import BUDGET_GZIP_BYTES, MINIFIED, SOURCE, Script, minify


def main() -> None:
    """Write the minified SDK next to its source."""
    MINIFIED.write_text(minify(SOURCE.read_text()))
    script = Script.load()
    print(
        f"wrote {MINIFIED.name}: {len(script.body):,} bytes, {len(script.gzipped):,} gzipped "
        f"(budget {BUDGET_GZIP_BYTES:,}); integrity {script.integrity}"
    )


if __name__ == "__main__":
    main()
