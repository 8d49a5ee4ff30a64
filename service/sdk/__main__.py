"""``python -m service.sdk``: minify persona.js into persona.min.js, and put its
integrity hash into docs/sdk.md."""

from __future__ import annotations

import re

from service.sdk import BUDGET_GZIP_BYTES, MINIFIED, SOURCE, Script, minify
from service.settings import REPO_DIR

DOC = REPO_DIR / "docs" / "sdk.md"
HASH = re.compile(r"sha384-[A-Za-z0-9+/]{64}")


def main() -> None:
    """Write the minified SDK next to its source and the documented hash."""
    MINIFIED.write_text(minify(SOURCE.read_text()))
    script = Script.load()
    if DOC.exists():
        DOC.write_text(HASH.sub(script.integrity, DOC.read_text()))
    print(
        f"wrote {MINIFIED.name}: {len(script.body):,} bytes, {len(script.gzipped):,} gzipped "
        f"(budget {BUDGET_GZIP_BYTES:,}); integrity {script.integrity}"
    )


if __name__ == "__main__":
    main()
