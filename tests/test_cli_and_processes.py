"""The ``persona`` command: help, settings errors, a private Redis, several workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

from service.local_redis import LocalRedis
from service.settings import REPO_DIR, SPECS
from tests.conftest import API_KEY, SECRET, SERVER
from tests.helpers import fan_profile, run_persona, store_profile
from tests.served import children, cmdline, post_decide, wait_ready


def test_help_documents_every_option_and_variable() -> None:
    out = run_persona(["serve", "--help"]).stdout
    for spec in SPECS:
        assert spec.option in out and spec.env in out, spec.env
    top = run_persona(["--help"]).stdout
    assert "serve" in top and "compile-model" in top


def test_bad_setting_stops_the_service_naming_the_variable() -> None:
    result = run_persona([], {"PERSONA_PORT": "eighty"})
    assert result.returncode == 2
    assert "PERSONA_PORT='eighty'" in result.stderr


def test_settings_table_lists_every_variable() -> None:
    out = run_persona(["settings"]).stdout
    assert all(f"`{spec.env}`" in out for spec in SPECS)


def test_without_redis_url_a_private_redis_with_aof_is_started_and_stopped(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    port = int(service_env["PERSONA_PORT"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=REPO_DIR,
        env=service_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ready = wait_ready(port, proc)
        assert ready["ready"] is True
        redis_children = [c for c in children(proc.pid) if "redis-server" in cmdline(c)]
        assert len(redis_children) == 1
        assert post_decide(port)["decisions"]["home-hero"]["fallback"] is None  # type: ignore[index]
        data = tmp_path / "data" / "redis"
        assert (data / "appendonlydir").is_dir()  # AOF on
        assert (tmp_path / "data" / "secrets.json").stat().st_mode & 0o077 == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/demo/" in out and "/metrics" in out
    assert f"http://127.0.0.1:{port}/sdk/v1/persona.js" in out
    time.sleep(0.3)
    assert not Path(f"/proc/{redis_children[0]}").exists() or "redis" not in cmdline(
        redis_children[0]
    )


def test_two_workers_share_the_port_and_aggregate_metrics(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    redis = LocalRedis(tmp_path / "redis", appendonly=False)
    redis.start()
    port = int(service_env["PERSONA_PORT"])
    env = {
        **service_env,
        "PERSONA_REDIS_URL": redis.url,
        "PERSONA_COOKIE_SECRETS": SECRET,
        "PERSONA_API_KEYS": API_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--workers", "2"],
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(port, proc)
        assert proc.stdout is not None
        while b"Persona is serving" not in proc.stdout.readline():  # both workers listen
            assert proc.poll() is None
        workers = [c for c in children(proc.pid) if "spawn_main" in cmdline(c)]
        assert len(workers) == 2
        for _ in range(40):
            post_decide(port)
        # a known visitor's profile is read over the pipelined client on uvloop
        store_profile(redis.url, "process-visitor-0000000001", fan_profile("climbing"))
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/decide",
            method="POST",
            data=b'{"placements": ["home-hero"], "visitor_id": "process-visitor-0000000001", '
            b'"include_scores": true}',
            headers={"X-Persona-Consent": "personalization", **SERVER},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            hero = orjson.loads(r.read())["decisions"]["home-hero"]
        assert hero["fallback"] is None
        assert hero["scores"][0]["variant_id"] == "hero-climbing"
        # the answering worker flushes its tallies; the other one's arrive within a second
        deadline = time.monotonic() + 3
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            count = [
                float(ln.rsplit(" ", 1)[1])
                for ln in text.splitlines()
                if ln.startswith(
                    'persona_http_request_duration_seconds_count{endpoint="/v1/decide"'
                )
            ]
            if count == [41.0] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert count == [41.0]
        os.kill(workers[0], signal.SIGKILL)  # a crashed worker is replaced
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = [c for c in children(proc.pid) if "spawn_main" in cmdline(c)]
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("worker was not restarted")
        wait_ready(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
        redis.stop()
    assert proc.returncode == 0, out
