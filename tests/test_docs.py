"""The docs stay true: the README's settings table and quick start match the code."""

from __future__ import annotations

import os

from service.cli import settings_table
from service.settings import REPO_DIR


def test_readme_settings_table_is_current() -> None:
    assert settings_table() in (REPO_DIR / "README.md").read_text()


def test_quick_start_commands_exist() -> None:
    readme = (REPO_DIR / "README.md").read_text()
    for script in ("scripts/run", "scripts/test"):
        assert script in readme
        assert os.access(REPO_DIR / script, os.X_OK)
    ci = (REPO_DIR / ".ci" / "run").read_text()
    assert ci.rstrip().endswith("scripts/test")
