"""Development secrets kept under the data folder when none are configured.

Production sets ``PERSONA_COOKIE_SECRETS``; a quick start should not need to,
yet must keep visitors' cookies valid across restarts and across workers, so a
key is generated once and stored with mode 0600.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import orjson


def dev_secrets(data_dir: Path) -> tuple[str, ...]:
    """The stored development cookie secrets, created on first use."""
    path = data_dir / "secrets.json"
    if path.exists():
        doc = orjson.loads(path.read_bytes())
        return tuple(str(s) for s in doc["cookie_secrets"])
    data_dir.mkdir(parents=True, exist_ok=True)
    value = (secrets.token_urlsafe(32),)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps({"cookie_secrets": list(value)}))
    return value
