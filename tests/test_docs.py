"""The docs stay true: the README's settings table is the code's, its quick start runs."""

from __future__ import annotations

import re
import subprocess

from service.cli import settings_table
from service.settings import REPO_DIR


def test_readme_settings_table_is_current() -> None:
    assert settings_table() in (REPO_DIR / "README.md").read_text()


def test_the_quick_start_is_two_commands_that_run() -> None:
    readme = (REPO_DIR / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line]
    assert commands == ["scripts/run", "scripts/test"]
    # the first sets everything up (a no-op when done) and hands over to the service's CLI
    done = subprocess.run(
        ["scripts/run", "--help"], cwd=REPO_DIR, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert "usage: persona" in done.stdout and "serve" in done.stdout
    # CI runs the second, the README's test command, last
    ci = (REPO_DIR / ".ci" / "run").read_text()
    assert ci.rstrip().splitlines()[-1] == "scripts/test"
