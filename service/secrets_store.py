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

SECRETS_FILE = "secrets.json"


def stored_secrets(data_dir: Path) -> dict[str, Any]:
    """The development secrets stored under ``data_dir`` ({} when there are none)."""
    try:
        doc = orjson.loads((data_dir / SECRETS_FILE).read_bytes())
    except FileNotFoundError:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{data_dir / SECRETS_FILE} does not hold a JSON object")
    return doc


def dev_secrets(data_dir: Path) -> dict[str, Any]:
    """The stored development secrets, created (or completed) on first use.

    Keys: ``cookie_secrets``, ``site_secrets`` and ``api_keys`` (lists), ``customer_id_key``.
    """
    path = data_dir / SECRETS_FILE
    doc = stored_secrets(data_dir)
    wanted: dict[str, Any] = {
        "cookie_secrets": [secrets.token_urlsafe(32)],
        "customer_id_key": secrets.token_urlsafe(32),
        "site_secrets": [secrets.token_urlsafe(32)],
        "api_keys": [secrets.token_urlsafe(32)],
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
