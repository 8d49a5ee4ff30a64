"""Development secrets kept under the data folder when none are configured.

Production sets ``PERSONA_COOKIE_SECRETS``; a quick start should not need to,
yet must keep visitors' cookies valid across restarts and across workers, so a
key is generated once and stored with mode 0600.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import orjson


def dev_secrets(data_dir: Path) -> dict[str, Any]:
    """The stored development secrets, created (or completed) on first use.

    Keys: ``cookie_secrets`` (list), ``customer_id_key``, ``site_secret``.
    """
    path = data_dir / "secrets.json"
    doc: dict[str, Any] = orjson.loads(path.read_bytes()) if path.exists() else {}
    wanted: dict[str, Any] = {
        "cookie_secrets": [secrets.token_urlsafe(32)],
        "customer_id_key": secrets.token_urlsafe(32),
        "site_secret": secrets.token_urlsafe(32),
    }
    missing = [k for k in wanted if k not in doc]
    if missing:
        for key in missing:
            doc[key] = wanted[key]
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(doc))
        os.replace(tmp, path)
    return doc
