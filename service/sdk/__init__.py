"""The web SDK: ``persona.js``, hand-written, minified by us, served at ``/sdk/v1/persona.js``.

``persona.js`` is the source. ``python -m service.sdk`` writes ``persona.min.js``
with terser (a build tool pinned in package-lock.json, installed by
scripts/bootstrap where node and npm are; the service itself needs neither) and
puts the file's Subresource Integrity hash into docs/sdk.md. The service serves
the minified file, gzipped when the browser accepts it. A test fails when the
committed minified file is not what the source minifies to, or when it
outgrows :data:`BUDGET_GZIP_BYTES`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from service.settings import REPO_DIR

HERE = Path(__file__).parent
SOURCE = HERE / "persona.js"
MINIFIED = HERE / "persona.min.js"
PATH = "/sdk/v1/persona.js"
BUDGET_GZIP_BYTES = 6 * 1024
"""The size budget of the served script, minified and gzipped."""


def minify(source: str) -> str:
    """The source compressed and mangled by terser (its ``/*!`` licence line kept)."""
    terser = REPO_DIR / "node_modules" / ".bin" / "terser"
    if not terser.exists():
        raise RuntimeError(
            "the SDK's minifier is missing: install node and npm, then run scripts/bootstrap"
        )
    options = ["--compress", "--mangle", "--ecma", "2020", "--comments", "/^!/"]
    done = subprocess.run(
        [str(terser), *options], input=source, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"terser failed: {done.stderr.strip()}")
    return done.stdout.rstrip("\n") + "\n"


def integrity_of(data: bytes) -> str:
    """The Subresource Integrity value of ``data`` (``sha384-<base64>``)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


@dataclass(frozen=True, slots=True)
class Script:
    """The served script: its bytes, gzipped once, its integrity hash and ETag."""

    body: bytes
    gzipped: bytes
    integrity: str
    etag: str

    @classmethod
    def load(cls, path: Path = MINIFIED) -> Script:
        """Read the minified script and prepare what every answer needs."""
        body = path.read_bytes()
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        return cls(
            body, gzipped, integrity_of(body), '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        )
