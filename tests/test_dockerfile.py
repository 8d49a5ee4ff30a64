"""The Dockerfile references only files and commands that exist (no engine runs here)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from service.cli import build_parser
from service.settings import REPO_DIR

DOCKERFILE = (REPO_DIR / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_multi_stage_non_root_with_readiness_healthcheck() -> None:
    ins = instructions()
    assert sum(1 for w, _ in ins if w == "FROM") >= 2
    users = [r for w, r in ins if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    health = [r for w, r in ins if w == "HEALTHCHECK"]
    assert len(health) == 1 and "/readyz" in health[0]
    assert any(w == "CMD" and "persona" in r for w, r in ins)


def test_every_copied_path_exists() -> None:
    for word, rest in instructions():
        if word == "COPY" and "--from" not in rest:
            *sources, _dest = shlex.split(rest)
            for src in sources:
                assert (REPO_DIR / src).exists(), src


def test_install_steps_are_the_scripts_the_readme_and_ci_use() -> None:
    runs = [r for w, r in instructions() if w == "RUN"]
    assert "scripts/bootstrap --prod" in runs
    bootstrap = REPO_DIR / "scripts" / "bootstrap"
    assert os.access(bootstrap, os.X_OK)
    assert "scripts/bootstrap" in (REPO_DIR / "scripts" / "run").read_text()
    assert "scripts/bootstrap" in (REPO_DIR / "scripts" / "test").read_text()
    assert "scripts/test" in (REPO_DIR / ".ci" / "run").read_text()
    readme = (REPO_DIR / "README.md").read_text()
    assert "scripts/run" in readme and "scripts/test" in readme
    assert "--prod" in bootstrap.read_text()


def test_persona_command_and_compile_subcommand_exist() -> None:
    project = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["persona"] == "service.cli:main"
    assert ".venv/bin/persona compile-model" in [r for w, r in instructions() if w == "RUN"]
    build_parser().parse_args(["compile-model"])
    result = subprocess.run(
        [sys.executable, "-m", "service", "compile-model", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_DIR,
    )
    assert result.returncode == 0 and "PERSONA_CACHE_DIR" in result.stdout


def test_compile_model_command_really_compiles(tmp_path: Path) -> None:
    env = {**os.environ, "PERSONA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "service", "compile-model"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_DIR,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.glob("*.so"))
