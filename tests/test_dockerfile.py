"""The Dockerfile references only files and commands that exist (no engine runs here).

Static checks of what ``docker build`` would use — every COPY source exists and
is not excluded by .dockerignore, every script is executable, the install and
compile commands are the ones the README and CI use — plus a run of the
HEALTHCHECK's own command against a stub server.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cli import build_parser
from service.settings import REPO_DIR
from tests.helpers import run_persona

DOCKERFILE = (REPO_DIR / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())

Instruction = tuple[str, str]


def instructions() -> list[Instruction]:
    """(KEYWORD, arguments) for each instruction, continuation lines joined."""
    lines = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def global_args() -> dict[str, str]:
    """ARG defaults declared before the first FROM."""
    args: dict[str, str] = {}
    for word, rest in instructions():
        if word == "FROM":
            break
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def stages() -> list[tuple[str, list[Instruction]]]:
    """(base image with ARGs expanded, instructions) for each stage."""
    args = global_args()
    out: list[tuple[str, list[Instruction]]] = []
    for word, rest in instructions():
        if word == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], rest.split()[0])
            out.append((image, []))
        elif out:
            out[-1][1].append((word, rest))
    return out


def of(stage: list[Instruction], keyword: str) -> list[str]:
    return [rest for word, rest in stage if word == keyword]


def env(stage: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for rest in of(stage, "ENV"):
        for item in shlex.split(rest):
            name, _, value = item.partition("=")
            values[name] = value
    return values


def commands(rest: str) -> list[list[str]]:
    """The simple commands of a shell-form RUN."""
    return [shlex.split(part) for part in re.split(r"&&|;|\|\|", rest) if part.strip()]


def test_multi_stage_from_one_slim_python_311_base() -> None:
    found = stages()
    assert len(found) >= 2
    images = {image for image, _ in found}
    # the venv built in the first stage runs on the same interpreter in the last
    assert len(images) == 1, images
    assert images.pop().startswith("python:3.11-slim")


def test_the_venv_keeps_its_absolute_path() -> None:
    (_, build), (_, runtime) = stages()[0], stages()[-1]
    assert of(build, "WORKDIR")[-1] == of(runtime, "WORKDIR")[-1] == "/app"
    assert "--from=build /app /app" in of(runtime, "COPY")
    assert of(runtime, "CMD")[-1].startswith('["/app/.venv/bin/persona"')


def test_runtime_is_non_root_listening_on_8080_with_a_readiness_healthcheck() -> None:
    _, runtime = stages()[-1]
    user = of(runtime, "USER")[-1]
    # numeric, so Kubernetes' runAsNonRoot can check it
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    assert env(runtime)["PERSONA_HOST"] == "0.0.0.0"
    assert env(runtime)["PERSONA_PORT"] == "8080"
    assert of(runtime, "EXPOSE") == ["8080"]
    health = of(runtime, "HEALTHCHECK")
    assert len(health) == 1 and "/readyz" in health[0]
    assert any("libgomp1" in run for run in of(runtime, "RUN"))
    assert "PERSONA_REDIS_URL" not in env(runtime)  # must be given: no redis-server inside
    assert "PERSONA_REDIS_URL must point at a Redis" in DOCKERFILE


def test_model_is_compiled_at_build_time_into_the_runtime_cache_dir() -> None:
    (_, build), (_, runtime) = stages()[0], stages()[-1]
    runs = of(build, "RUN")
    assert ".venv/bin/persona compile-model" in runs
    compile_at = build.index(("RUN", ".venv/bin/persona compile-model"))
    cache = env(build[:compile_at])["PERSONA_CACHE_DIR"]
    assert cache.startswith("/app/") and env(runtime)["PERSONA_CACHE_DIR"] == cache


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    ignored = dockerignore_patterns()
    for word, rest in instructions():
        if word == "COPY" and "--from" not in rest:
            *sources, _dest = shlex.split(rest)
            for src in sources:
                path = REPO_DIR / src
                assert path.exists(), src
                files = [path] if path.is_file() else list(tracked_files(path))
                assert files, src
                for file in files:
                    relative = file.relative_to(REPO_DIR).as_posix()
                    assert not is_ignored(relative, ignored), f"{relative} is in .dockerignore"


def test_install_steps_are_the_scripts_the_readme_and_ci_use() -> None:
    runs = [r for w, r in instructions() if w == "RUN"]
    assert "scripts/bootstrap --prod" in runs
    bootstrap = REPO_DIR / "scripts" / "bootstrap"
    assert "--prod" in bootstrap.read_text()
    assert "scripts/bootstrap" in (REPO_DIR / "scripts" / "run").read_text()
    assert "scripts/bootstrap" in (REPO_DIR / "scripts" / "test").read_text()
    assert "scripts/test" in (REPO_DIR / ".ci" / "run").read_text()
    readme = (REPO_DIR / "README.md").read_text()
    assert "scripts/run" in readme and "scripts/test" in readme


def test_every_command_the_dockerfile_runs_exists() -> None:
    parser = build_parser()
    scripts = PYPROJECT["project"]["scripts"]
    seen = set()
    for word, rest in instructions():
        if word not in ("RUN", "CMD"):
            continue
        argvs = [json.loads(rest)] if rest.startswith("[") else commands(rest)
        for argv in argvs:
            program = argv[0].removeprefix("/app/")
            if program.startswith("scripts/"):
                assert os.access(REPO_DIR / program, os.X_OK), program
                seen.add(program)
            elif program == ".venv/bin/persona":
                assert scripts["persona"] == "service.cli:main"
                parser.parse_args(argv[1:])  # exits (SystemExit) on an unknown subcommand
                seen.add(f"persona {argv[1]}")
    assert {"scripts/bootstrap", "persona compile-model", "persona serve"} <= seen


def test_compile_model_help_runs() -> None:
    result = run_persona(["compile-model", "--help"])
    assert result.returncode == 0 and "PERSONA_CACHE_DIR" in result.stdout


@pytest.mark.slow
def test_compile_model_command_really_compiles(tmp_path: Path) -> None:
    result = run_persona(["compile-model"], {"PERSONA_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.glob("*.so"))


class _Readiness(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def readiness_stub() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Readiness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_healthcheck_command_passes_on_200_and_fails_otherwise(
    readiness_stub: http.server.HTTPServer,
) -> None:
    health = of(stages()[-1][1], "HEALTHCHECK")[0]
    argv = json.loads(health.partition("CMD ")[2])
    assert argv[0] == "/app/.venv/bin/python" and argv[1] == "-c"

    def probe(port: int, status: int) -> int:
        _Readiness.status = status
        run_env = {**os.environ, "PERSONA_PORT": str(port)}
        done = subprocess.run(
            [sys.executable, "-c", argv[2]], capture_output=True, timeout=30, env=run_env
        )
        return done.returncode

    port = readiness_stub.server_address[1]
    assert probe(port, 200) == 0
    assert probe(port, 503) == 1
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    assert probe(closed_port, 200) == 1  # nothing listening


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, regex) for each .dockerignore line."""
    path = REPO_DIR / ".dockerignore"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.removeprefix("!").strip().lstrip("/").removeprefix("./").rstrip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        out.append((negate, re.compile(regex + r"\Z")))
    return out


def is_ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent folder counts."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, regex in patterns:
        if any(regex.match(p) for p in prefixes):
            ignored = not negate
    return ignored


def tracked_files(folder: Path) -> Iterator[Path]:
    """Files under ``folder`` the build needs (bytecode caches aside)."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith(".pyc"):
                yield Path(root) / name


def test_dockerignore_matcher() -> None:
    patterns = dockerignore_patterns()
    assert is_ignored("service/__pycache__/app.cpython-311.pyc", patterns)
    assert is_ignored(".venv/bin/python", patterns)
    assert is_ignored("tests/test_dockerfile.py", patterns)
    assert not is_ignored("service/openapi.json", patterns)
    assert not is_ignored("README.md", patterns)
