"""The compose stack in deploy/compose names only things that exist, and its parts run.

No Docker engine runs here, so each container's own program stands in for it:
the real redis-server runs ``redis.conf`` through ``redis-with-password.sh``;
the service and the archiver run their compose commands and environment
through ``secrets-to-env.sh`` with secrets made by ``make-secrets.sh``; the
healthchecks' own commands probe them; ``promtool`` checks ``prometheus.yml``
and a real Prometheus scrapes the service with it and evaluates the rules it
loads. The static tests check every mounted path, port, image tag, setting,
subcommand and metric the files name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry

from service.cli import build_parser
from service.local_redis import free_port
from service.metrics import Metrics
from service.settings import REPO_DIR, SPECS, load_settings
from service.store.address import parse_redis_url
from tests.conftest import CACHE_DIR

COMPOSE_DIR = REPO_DIR / "deploy" / "compose"
COMPOSE: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
PROVISIONING = COMPOSE_DIR / "grafana" / "provisioning"
DOCKERFILE = (REPO_DIR / "Dockerfile").read_text()
SETTING_NAMES = {spec.env for spec in SPECS}
RETENTION = ("PERSONA_ARCHIVE_URL", "PERSONA_LOG_WINDOW_S", "PERSONA_LOG_MEMORY_LIMIT_MB")
# Values of the site settings the compose file reads from deploy/compose/.env.
SITE_ENV = dict(
    line.split("=", 1)
    for line in (COMPOSE_DIR / ".env.example").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
PROMETHEUS_BUILTIN_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
}


# --- reading the compose file ------------------------------------------------------------


def persona_services() -> dict[str, dict[str, Any]]:
    """The services that run the image built from the repository's Dockerfile."""
    return {name: s for name, s in SERVICES.items() if "build" in s}


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of each file or folder of the repository the service mounts."""
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append(((COMPOSE_DIR / source).resolve(), target))
    return out


def named_volume_targets(service: dict[str, Any]) -> list[str]:
    """Container paths where the service mounts a named volume."""
    declared = COMPOSE.get("volumes") or {}
    return [v.split(":")[1] for v in service.get("volumes", []) if v.split(":")[0] in declared]


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a path inside the service's container comes from in the repository."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted from the repository")


_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: ``${X}``, ``${X:-default}``, ``${X:?error}``, ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        found = env.get(name, "")
        if op == "?" and not found:
            raise KeyError(f"{name} is required: {arg}")
        if op == "-" and not found:
            return arg
        return found

    return _INTERPOLATION.sub(replace, value)


def service_env(name: str, site: Mapping[str, str] = SITE_ENV) -> dict[str, str]:
    """A service's environment as compose passes it, with the site settings of ``site``."""
    env = SERVICES[name].get("environment") or {}
    return {key: interpolate(str(value), site) for key, value in env.items()}


def seconds(duration: str) -> float:
    """A compose duration (``30s``, ``1m30s``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def redis_conf() -> dict[str, str]:
    """The directives of deploy/compose/redis.conf (name -> value as written)."""
    out = {}
    for line in (COMPOSE_DIR / "redis.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            out[name.lower()] = value.strip()
    return out


def redis_bytes(value: str) -> int:
    """A redis.conf memory size (``4gb``, ``512mb``, ``100m``) in bytes."""
    match = re.fullmatch(r"(\d+)(k|kb|m|mb|g|gb)?", value.lower())
    assert match, value
    units = {None: 1, "k": 1000, "kb": 1024, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}
    return int(match.group(1)) * units[match.group(2)]


def dockerfile_port() -> int:
    """The port the image EXPOSEs."""
    ports = re.findall(r"^EXPOSE\s+(\d+)\s*$", DOCKERFILE, re.M)
    assert len(ports) == 1, ports
    return int(ports[0])


def job(name: str) -> dict[str, Any]:
    """A scrape job of prometheus.yml."""
    jobs = [j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == name]
    assert len(jobs) == 1, f"one job {name!r} expected"
    return jobs[0]


def job_targets(name: str) -> list[str]:
    """The static targets of a scrape job."""
    return [t for group in job(name)["static_configs"] for t in group["targets"]]


def yaml_files(folder: Path) -> list[dict[str, Any]]:
    """Every YAML document of a provisioning folder."""
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    assert files, f"no provisioning file in {folder}"
    return [yaml.safe_load(f.read_text()) for f in files]


# --- files, images, ports ----------------------------------------------------------------


def test_every_path_the_stack_mounts_exists() -> None:
    mounted = 0
    for name, service in SERVICES.items():
        for source, target in bind_mounts(service):
            assert source.exists(), f"{name} mounts {source}, which does not exist"
            assert target.startswith("/"), target
            mounted += 1
    assert mounted >= 8
    for name, service in persona_services().items():
        context = (COMPOSE_DIR / service["build"]["context"]).resolve()
        assert context == REPO_DIR, name
        assert (context / service["build"]["dockerfile"]).is_file()
        # the wrapper the entrypoint runs is one of the mounted files
        assert service["entrypoint"][0] == "/bin/sh"
        assert host_path(service, service["entrypoint"][1]).is_file()
    redis_entry = SERVICES["redis"]["entrypoint"]
    assert host_path(SERVICES["redis"], redis_entry[1]).is_file()
    # the secret files are made by make-secrets.sh and kept out of git
    for secret in COMPOSE["secrets"].values():
        assert secret["file"].startswith("./secrets/"), secret
    ignored = (COMPOSE_DIR / ".gitignore").read_text().splitlines()
    assert "/secrets/" in ignored and "/.env" in ignored


def test_every_secret_a_service_uses_is_declared() -> None:
    declared = set(COMPOSE["secrets"])
    used = {s for service in SERVICES.values() for s in service.get("secrets", [])}
    assert used == declared
    for name, service in SERVICES.items():
        for text in json.dumps(service).split("/run/secrets/")[1:]:
            secret = re.match(r"\w+", text)
            assert secret and secret.group(0) in service.get("secrets", []), (name, text)


def test_the_rules_and_dashboards_the_stack_loads_exist() -> None:
    rules = host_path(SERVICES["prometheus"], "/etc/prometheus/rules")
    assert rules.is_dir(), rules
    assert sorted(rules.glob("*.yml")), f"no rule files in {rules}"
    dashboards = dashboard_folder()
    assert dashboards.is_dir(), dashboards
    files = sorted(dashboards.glob("*.json"))
    assert files, f"no dashboards in {dashboards}"
    provisioned = datasource_references()
    for file in files:
        doc = json.loads(file.read_text())
        assert isinstance(doc, dict) and doc.get("panels"), file
        for ref in walk_datasources(doc):
            assert ref in provisioned or ref.startswith("$"), f"{file.name}: datasource {ref!r}"


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", image
        if "build" not in service:
            assert re.match(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not a release"
    # redis.conf is checked below with this machine's redis-server: the same major version
    local = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    local_major = re.search(r"v=(\d+)\.", local.stdout)
    assert local_major
    assert SERVICES["redis"]["image"].split(":")[1].split(".")[0] == local_major.group(1)


def test_the_service_port_is_the_images_everywhere() -> None:
    port = dockerfile_port()
    persona = SERVICES["persona"]
    assert int(persona["environment"]["PERSONA_PORT"]) == port
    assert [p.rsplit(":", 1)[1] for p in persona["ports"]] == [str(port)]
    health = persona["healthcheck"]["test"]
    assert health[:3] == ["CMD", "/app/.venv/bin/python", "-c"]
    assert re.findall(r"https?://([\w.]+):(\d+)(/\w*)", health[3]) == [
        ("127.0.0.1", str(port), "/readyz")
    ]
    assert job("persona")["metrics_path"] == "/metrics"
    assert job_targets("persona") == [f"persona:{port}"]
    command = persona["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert int(command[command.index("--workers") + 1]) >= 1


def test_redis_is_addressed_where_it_listens() -> None:
    conf_port = int(redis_conf()["port"])
    for name in persona_services():
        address = parse_redis_url(service_env(name)["PERSONA_REDIS_URL"])
        assert (address.host, address.port, address.password) == ("redis", conf_port, None)
    exporter = urllib.parse.urlparse(SERVICES["redis-exporter"]["environment"]["REDIS_ADDR"])
    assert (exporter.hostname, exporter.port) == ("redis", conf_port)
    assert job_targets("redis") == ["redis-exporter:9121"]
    for name in [*persona_services(), "redis-exporter"]:
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_persona_variable_is_a_setting_with_a_valid_value() -> None:
    text = (COMPOSE_DIR / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{(\w+)", text))
    assert interpolated <= SETTING_NAMES, interpolated - SETTING_NAMES
    assert set(SITE_ENV) == interpolated  # .env.example lists exactly what compose reads
    for name in persona_services():
        env = service_env(name)
        unknown = set(env) - SETTING_NAMES
        assert not unknown, f"{name}: {unknown} are not settings"
        load_settings(env)  # raises SettingsError naming an invalid value
    # the site settings are required or defaulted as .env.example says
    with pytest.raises(KeyError, match="PERSONA_CORS_ORIGINS"):
        service_env("persona", {})


def test_the_commands_are_ones_the_cli_accepts() -> None:
    scripts = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["persona"] == "service.cli:main"
    assert '"/app/.venv/bin/persona"' in DOCKERFILE  # the image's console script
    parser = build_parser()
    seen = set()
    for name, service in persona_services().items():
        command = service["command"]
        assert command[0] == "/app/.venv/bin/persona", name
        try:
            args = parser.parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"{name}: `persona {' '.join(command[1:])}` is refused by the CLI")
        assert args.command == command[1]
        seen.add(command[1])
    assert seen == {"serve", "archive"}


def test_the_grace_period_outlasts_the_shutdown_timeout() -> None:
    persona = SERVICES["persona"]
    timeout_s = float(persona["environment"]["PERSONA_SHUTDOWN_TIMEOUT_S"])
    # after the timeout the process still flushes its decision log and metrics
    assert seconds(persona["stop_grace_period"]) >= timeout_s + 5
    for name, service in SERVICES.items():
        assert service["restart"] == "unless-stopped", name


def test_the_archive_and_the_log_limit_fit_the_stack() -> None:
    archiver = service_env("archiver")
    # kept on a named volume, so it outlives the container
    archive = archiver["PERSONA_ARCHIVE_URL"]
    assert any(
        archive == t or archive.startswith(t + "/")
        for t in named_volume_targets(SERVICES["archiver"])
    )
    assert int(archiver["PERSONA_LOG_WINDOW_S"]) > 0
    # the log's hard limit leaves at least half of Redis to profiles and the rest
    limit = int(archiver["PERSONA_LOG_MEMORY_LIMIT_MB"]) * 2**20
    assert 0 < limit <= redis_bytes(redis_conf()["maxmemory"]) // 2
    # the service's workers trim by the same rule (the tightest settings would win)
    # and leave the archiving to the archiver
    persona = service_env("persona")
    assert {k: persona[k] for k in RETENTION} == {k: archiver[k] for k in RETENTION}
    assert load_settings(persona).archive_in_service is False
    assert load_settings(archiver).archive_in_service is True


def test_the_archiver_port_is_the_same_everywhere() -> None:
    archiver = SERVICES["archiver"]
    args = build_parser().parse_args(archiver["command"][1:])
    assert args.metrics_host == "0.0.0.0"
    health = archiver["healthcheck"]["test"]
    assert health[:3] == ["CMD", "/app/.venv/bin/python", "-c"]
    assert re.findall(r"https?://([\w.]+):(\d+)(/\w*)", health[3]) == [
        ("127.0.0.1", str(args.metrics_port), "/healthz")
    ]
    assert job("persona-archiver")["metrics_path"] == "/metrics"
    assert job_targets("persona-archiver") == [f"archiver:{args.metrics_port}"]
    # a fixed consumer name: a new container takes over the old one's pending entries
    assert args.consumer == "archiver"


def test_the_redis_conf_keeps_every_write_and_evicts_nothing() -> None:
    conf = redis_conf()
    assert conf["appendonly"] == "yes" and conf["appendfsync"] == "always"
    assert conf["maxmemory-policy"] == "noeviction" and redis_bytes(conf["maxmemory"]) > 0
    assert "requirepass" not in conf  # the password comes from the secret
    redis_service = SERVICES["redis"]
    data = conf["dir"]
    assert data in named_volume_targets(redis_service)
    assert host_path(redis_service, redis_service["command"][-1]) == COMPOSE_DIR / "redis.conf"


# --- Prometheus and Grafana --------------------------------------------------------------


def prometheus_config_copy(folder: Path, **changes: Any) -> Path:
    """prometheus.yml with its rule files at their paths in the repository, and ``changes``."""
    config = dict(PROMETHEUS, **changes)
    config["rule_files"] = [
        str(host_path(SERVICES["prometheus"], pattern)) for pattern in PROMETHEUS["rule_files"]
    ]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    command = SERVICES["prometheus"]["command"]
    config_file = next(a.split("=", 1)[1] for a in command if a.startswith("--config.file="))
    assert host_path(SERVICES["prometheus"], config_file) == COMPOSE_DIR / "prometheus.yml"
    assert PROMETHEUS["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    checked = subprocess.run(
        ["promtool", "check", "config", str(prometheus_config_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = re.search(r"SUCCESS: (\d+) rule files found", checked.stdout + checked.stderr)
    assert found, checked.stdout
    rules = host_path(SERVICES["prometheus"], "/etc/prometheus/rules")
    assert int(found.group(1)) == len(list(rules.glob("*.yml")))


def dashboard_folder() -> Path:
    """The repository folder Grafana's dashboard provider loads."""
    (doc,) = yaml_files(PROVISIONING / "dashboards")
    (provider,) = doc["providers"]
    return host_path(SERVICES["grafana"], provider["options"]["path"])


def datasource_references() -> set[str]:
    """Names and uids of the provisioned datasources, and Grafana's built-in ones."""
    refs = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}
    for doc in yaml_files(PROVISIONING / "datasources"):
        for source in doc["datasources"]:
            refs |= {source["name"], source["uid"]}
    return refs


def walk_datasources(node: Any) -> Iterator[str]:
    """The uid or name of every datasource a dashboard refers to."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, str):
                yield value
            elif key == "datasource" and isinstance(value, dict) and "uid" in value:
                yield str(value["uid"])
            else:
                yield from walk_datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_datasources(item)


def test_grafana_provisioning_has_what_grafana_needs() -> None:
    grafana = SERVICES["grafana"]
    assert host_path(grafana, "/etc/grafana/provisioning") == PROVISIONING
    (datasources,) = yaml_files(PROVISIONING / "datasources")
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    assert source["access"] == "proxy" and source["isDefault"] is True
    # the prometheus service, on the port it listens on (no --web.listen-address)
    assert source["url"] == "http://prometheus:9090"
    assert not any(a.startswith("--web.listen-address") for a in SERVICES["prometheus"]["command"])
    assert [p.rsplit(":", 1)[1] for p in SERVICES["prometheus"]["ports"]] == ["9090"]
    (dashboards,) = yaml_files(PROVISIONING / "dashboards")
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file" and provider["name"]
    assert dashboard_folder() == REPO_DIR / "deploy" / "grafana"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == (
        "/run/secrets/grafana_admin_password"
    )


# --- the secret files and the wrapper that exports them -----------------------------------


def make_secrets(folder: Path) -> subprocess.CompletedProcess[str]:
    """Run make-secrets.sh into ``folder``."""
    return subprocess.run(
        ["sh", str(COMPOSE_DIR / "make-secrets.sh"), str(folder)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_make_secrets_creates_every_secret_the_stack_declares(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    assert make_secrets(folder).returncode == 0
    declared = {Path(s["file"]).name for s in COMPOSE["secrets"].values()}
    assert {p.name for p in folder.iterdir()} == declared
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    values = {}
    for file in folder.iterdir():
        values[file.name] = file.read_text()
        assert re.fullmatch(r"[A-Za-z0-9_-]{64}", values[file.name]), file.name
        assert stat.S_IMODE(file.stat().st_mode) == 0o644
    assert len(set(values.values())) == len(values)
    # run again: existing secrets are kept, a missing one is made
    (folder / "api_keys").unlink()
    again = make_secrets(folder)
    assert again.returncode == 0 and again.stdout.count("created") == 1
    for file in folder.iterdir():
        assert (file.read_text() == values[file.name]) == (file.name != "api_keys")


def wrapped_env(
    secrets_dir: Path, env: Mapping[str, str]
) -> tuple[int, dict[str, str] | None, str]:
    """The environment secrets-to-env.sh gives its command, starting from ``env``."""
    done = subprocess.run(
        [
            "sh",
            str(COMPOSE_DIR / "secrets-to-env.sh"),
            sys.executable,
            "-c",
            "import json, os; print(json.dumps(dict(os.environ)))",
        ],
        env={"PATH": os.environ["PATH"], "SECRETS_DIR": str(secrets_dir), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else None, done.stderr


def test_the_wrapper_exports_the_secrets_the_settings_read(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    make_secrets(folder)
    secret = {p.name: p.read_text() for p in folder.iterdir()}
    base = service_env("persona")
    code, env, err = wrapped_env(folder, base)
    assert code == 0 and env is not None, err
    settings = load_settings(env)
    assert settings.cookie_secrets == (secret["cookie_secrets"],)
    assert settings.customer_id_key == secret["customer_id_key"]
    assert settings.site_secrets == (secret["site_secrets"],)
    assert settings.api_keys == (secret["api_keys"],)
    address = parse_redis_url(settings.redis_url or "")
    assert (address.host, address.port, address.db) == ("redis", 6379, 0)
    assert address.password == secret["redis_password"]
    # a secret with a trailing newline (written with echo) reads the same
    (folder / "api_keys").write_text(secret["api_keys"] + "\n")
    code, env, err = wrapped_env(folder, base)
    assert env is not None and env["PERSONA_API_KEYS"] == secret["api_keys"]
    # the archiver mounts only the Redis password: the other variables stay unset
    only_redis = tmp_path / "only-redis"
    only_redis.mkdir()
    shutil.copy(folder / "redis_password", only_redis)
    code, env, err = wrapped_env(only_redis, service_env("archiver"))
    assert code == 0 and env is not None, err
    assert "PERSONA_API_KEYS" not in env
    assert env["PERSONA_ARCHIVE_URL"] == service_env("archiver")["PERSONA_ARCHIVE_URL"]
    assert parse_redis_url(env["PERSONA_REDIS_URL"]).password == secret["redis_password"]


def test_the_wrapper_refuses_a_password_it_cannot_put_in_a_url(tmp_path: Path) -> None:
    (tmp_path / "redis_password").write_text("p@ss/word")
    code, _, err = wrapped_env(tmp_path, service_env("persona"))
    assert code == 2 and "URL-safe" in err
    (tmp_path / "redis_password").write_text("x" * 40)
    code, _, err = wrapped_env(tmp_path, {"PERSONA_REDIS_URL": "redis://u:pw@redis:6379/0"})
    assert code == 2 and "already holds credentials" in err


# --- the stack's programs, running ---------------------------------------------------------


@dataclass
class Stack:
    """Redis and the persona-image services as the compose file starts them, on this machine."""

    folder: Path
    secrets: Path
    """Every secret make-secrets.sh made."""
    redis_port: int
    redis_command: list[str]
    redis_env: dict[str, str]
    redis_proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    """The port each started service listens on here."""

    def start_redis(self) -> None:
        """Start redis-server the way the redis service does."""
        log = (self.folder / "redis.log").open("ab")
        self.redis_proc = subprocess.Popen(
            self.redis_command, env=self.redis_env, stdout=log, stderr=log
        )
        log.close()
        client = self.redis_client()
        try:
            wait_for(lambda: ping(client), 10, "redis-server to answer")
        finally:
            client.close()

    def stop_redis(self) -> None:
        """Stop it as Docker does (SIGTERM)."""
        if self.redis_proc is not None:
            self.redis_proc.send_signal(signal.SIGTERM)
            self.redis_proc.wait(10)
            self.redis_proc = None

    def redis_client(self, password: str | None = None) -> redis.Redis:
        """A client of the test Redis (with the secret password unless told otherwise)."""
        pw = (self.secrets / "redis_password").read_text() if password is None else password
        return redis.Redis(
            port=self.redis_port, password=pw or None, socket_timeout=2, decode_responses=True
        )

    def secrets_of(self, service: str) -> Path:
        """A folder with only the secrets the service mounts, named as in /run/secrets."""
        folder = self.folder / f"secrets-{service}"
        if not folder.exists():
            folder.mkdir()
            for name in SERVICES[service]["secrets"]:
                shutil.copy(
                    self.secrets / Path(COMPOSE["secrets"][name]["file"]).name, folder / name
                )
        return folder

    def data_dir(self, service: str) -> Path:
        """What the service's /app/data (the image's PERSONA_DATA_DIR) is here."""
        return self.folder / f"{service}-data"

    def start(self, service: str, port: int, listen: list[str]) -> subprocess.Popen[bytes]:
        """Start a service of the persona image with its compose entrypoint, command,
        environment and secrets; ``listen`` is appended to the command (later options win)."""
        spec = SERVICES[service]
        entrypoint = [
            str(host_path(spec, a)) if a.startswith("/etc/") else a for a in spec["entrypoint"]
        ]
        command = [str(REPO_DIR / ".venv/bin/persona"), *spec["command"][1:], *listen]
        image_data = re.search(r"PERSONA_DATA_DIR=(\S+)", DOCKERFILE)
        assert image_data and image_data.group(1) == "/app/data"
        data = self.data_dir(service)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSONA_", "PROMETHEUS"))}
        for key, value in service_env(service).items():
            value = value.replace("redis:6379", f"127.0.0.1:{self.redis_port}")
            if value == "/app/data" or value.startswith("/app/data/"):
                value = str(data) + value.removeprefix("/app/data")
            env[key] = value
        env.update(
            SECRETS_DIR=str(self.secrets_of(service)),
            # what the image's ENV sets, at this machine's paths
            PERSONA_DATA_DIR=str(data),
            PERSONA_CACHE_DIR=str(CACHE_DIR),
        )
        log_path = self.folder / f"{service}.log"
        log = log_path.open("ab")
        proc = subprocess.Popen(
            [*entrypoint, *command], env=env, stdout=log, stderr=log, cwd=self.folder
        )
        log.close()
        self.ports[service] = port

        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            return self.healthcheck(service) == 0

        try:
            wait_for(healthy, 90, f"the {service} healthcheck to pass")
        except BaseException:
            stop(proc, 10)
            raise
        return proc

    def healthcheck(self, service: str, password_file: Path | None = None) -> int:
        """Exit status of the service's compose healthcheck, run against this stack."""
        test = SERVICES[service]["healthcheck"]["test"]
        if service == "redis":
            assert test[0] == "CMD-SHELL"
            shell = interpolate(test[1], {}).replace(
                "/run/secrets/redis_password",
                str(password_file or self.secrets / "redis_password"),
            )
            shell = shell.replace("redis-cli", f"redis-cli -p {self.redis_port}")
            argv = ["sh", "-c", shell]
        else:
            assert test[:3] == ["CMD", "/app/.venv/bin/python", "-c"]
            script, count = re.subn(
                r"127\.0\.0\.1:\d+/", f"127.0.0.1:{self.ports[service]}/", test[3]
            )
            assert count == 1, test
            argv = [sys.executable, "-c", script]
        return subprocess.run(argv, capture_output=True, timeout=30).returncode


def stop(proc: subprocess.Popen[bytes], grace_s: float) -> int:
    """Stop a process as Docker does: SIGTERM, then SIGKILL after ``grace_s``."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running {grace_s} s after SIGTERM") from None


def ping(client: redis.Redis) -> bool:
    """Whether Redis answers (an authentication error counts as an answer)."""
    try:
        client.ping()
    except redis.AuthenticationError:
        return True
    except redis.RedisError:
        return False
    return True


def wait_for(check: Any, timeout_s: float, what: str) -> None:
    """Poll ``check()`` until it is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def redis_conf_copy(path: Path, port: int, data: Path) -> Path:
    """redis.conf at ``path``, listening on loopback at ``port``, with its data in ``data``."""
    data.mkdir(exist_ok=True)
    text = (COMPOSE_DIR / "redis.conf").read_text()
    for name, value in (("bind", "127.0.0.1"), ("port", str(port)), ("dir", str(data))):
        text, count = re.subn(rf"^{name} .*$", f"{name} {value}", text, flags=re.M)
        assert count == 1, name
    path.write_text(text)
    return path


def redis_service_command(conf: Path) -> list[str]:
    """The redis service's entrypoint and command, with this machine's paths."""
    service = SERVICES["redis"]
    entrypoint = [
        str(host_path(service, a)) if a.startswith("/usr/local/") else a
        for a in service["entrypoint"]
    ]
    command = list(service["command"])
    # the image's own entrypoint (drops root, then execs its arguments) is not here
    assert command[0] == "docker-entrypoint.sh"
    assert host_path(service, command[-1]) == COMPOSE_DIR / "redis.conf"
    return [*entrypoint, *command[1:-1], str(conf)]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Redis and the service started with the compose files' commands, conf and secrets."""
    with tempfile.TemporaryDirectory(prefix="persona-compose-") as tmp:
        folder = Path(tmp)
        secrets = folder / "secrets"
        assert make_secrets(secrets).returncode == 0
        redis_port = free_port()
        s = Stack(
            folder=folder,
            secrets=secrets,
            redis_port=redis_port,
            redis_command=redis_service_command(
                redis_conf_copy(folder / "redis.conf", redis_port, folder / "redis-data")
            ),
            redis_env={
                "PATH": os.environ["PATH"],
                "REDIS_PASSWORD_FILE": str(secrets / "redis_password"),
            },
        )
        s.start_redis()
        try:
            port = free_port()
            persona = s.start("persona", port, ["--host", "127.0.0.1", "--port", str(port)])
            try:
                yield s
            finally:
                stop(persona, seconds(SERVICES["persona"]["stop_grace_period"]))
        finally:
            s.stop_redis()


@pytest.mark.slow
def test_redis_runs_the_conf_with_the_secret_password(stack: Stack) -> None:
    client = stack.redis_client()
    try:
        config = client.config_get("*")
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "always"
        assert config["maxmemory-policy"] == "noeviction"
        assert int(config["maxmemory"]) == redis_bytes(redis_conf()["maxmemory"]) > 0
        assert config["save"] == ""
        assert (Path(config["dir"]) / config["appenddirname"]).is_dir()
    finally:
        client.close()
    anonymous = stack.redis_client(password="")
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()
    assert stack.healthcheck("redis") == 0
    wrong = stack.folder / "wrong_password"
    wrong.write_text("not-the-password")
    assert stack.healthcheck("redis", wrong) != 0


@pytest.mark.slow
def test_a_copy_of_the_aof_taken_while_redis_runs_restores_it(stack: Stack) -> None:
    client = stack.redis_client()
    try:
        client.set("backup-check", "kept")
        # the backup procedure of docs/operations.md: no rewrite while the files are copied
        assert client.config_set("auto-aof-rewrite-percentage", "0")
        wait_for(
            lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0, 30, "no rewrite"
        )
        config = client.config_get("dir")
        copy = stack.folder / "backup-data"
        shutil.copytree(Path(config["dir"]) / "appendonlydir", copy / "appendonlydir")
        assert client.config_set(
            "auto-aof-rewrite-percentage", redis_conf()["auto-aof-rewrite-percentage"]
        )
    finally:
        client.close()
    port = free_port()
    conf = redis_conf_copy(stack.folder / "restored.conf", port, copy)
    restored = Stack(
        folder=stack.folder,
        secrets=stack.secrets,
        redis_port=port,
        redis_command=redis_service_command(conf),
        redis_env=stack.redis_env,
    )
    restored.start_redis()
    try:
        again = restored.redis_client()
        try:
            assert again.get("backup-check") == "kept"
        finally:
            again.close()
    finally:
        restored.stop_redis()


def test_the_redis_wrapper_refuses_a_missing_or_unsafe_password(tmp_path: Path) -> None:
    script = str(COMPOSE_DIR / "redis-with-password.sh")
    base = {"PATH": os.environ["PATH"]}
    missing = subprocess.run(
        ["sh", script, "true"],
        env={**base, "REDIS_PASSWORD_FILE": str(tmp_path / "none")},
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    (tmp_path / "pw").write_text('a"b c')
    unsafe = subprocess.run(
        ["sh", script, "true"],
        env={**base, "REDIS_PASSWORD_FILE": str(tmp_path / "pw")},
        capture_output=True,
        text=True,
    )
    assert unsafe.returncode == 2 and "URL-safe" in unsafe.stderr


@pytest.mark.slow
def test_the_service_runs_with_the_compose_command_and_secrets(stack: Stack) -> None:
    api_key = (stack.secrets / "api_keys").read_text()
    origin = SITE_ENV["PERSONA_CORS_ORIGINS"].split(",")[0]
    url = f"http://127.0.0.1:{stack.ports['persona']}/v1/decide?placement=home-hero"

    def call(key: str) -> tuple[int, str | None]:
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {key}", "Origin": origin}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers.get("Access-Control-Allow-Origin")
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code, None

    assert call(api_key) == (200, origin)
    assert call("k" * 64)[0] == 401
    assert stack.healthcheck("persona") == 0


def metric_names_exposed(stack: Stack) -> set[str]:
    """Every series name the service can expose: its scrape now and its metric families."""
    url = f"http://127.0.0.1:{stack.ports['persona']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    names = {m for m in re.findall(r"^([a-zA-Z_:][\w:]*)", text, re.M)}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    for family in Metrics(CollectorRegistry()).registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_PROMQL_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_PROMQL_NAME = re.compile(r"(?<![\w.:])(?>[A-Za-z_:][\w:]*)(?!\s*\()")
_PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "start",
    "end",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    expr = _PROMQL_STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = _PROMQL_GROUPING.sub("", expr)
    return {n for n in _PROMQL_NAME.findall(expr) if n.lower() not in _PROMQL_WORDS}


def test_promql_metric_names() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(persona_x_bucket{endpoint="/v1/decide"}[5m])))'
        " / ignoring(reason) group_left sum(rate(persona_y_total[5m] offset 1h)) > 1e3"
        ' and on(instance) up{job="persona"} == bool 0 or persona:ratio:5m unless absent(z)'
    )
    assert promql_metric_names(expr) == {
        "persona_x_bucket",
        "persona_y_total",
        "up",
        "persona:ratio:5m",
        "z",
    }


def rule_files() -> list[Path]:
    """The rule files the stack's Prometheus loads, at their paths in the repository."""
    files: list[Path] = []
    for pattern in PROMETHEUS["rule_files"]:
        path = host_path(SERVICES["prometheus"], pattern)
        files += sorted(path.parent.glob(path.name))
    return files


@pytest.mark.slow
def test_every_metric_the_rules_name_exists(stack: Stack) -> None:
    files = rule_files()
    assert files, "no rule files yet"
    exposed = metric_names_exposed(stack)
    recorded: set[str] = set()
    named: dict[str, str] = {}
    for file in files:
        for group in yaml.safe_load(file.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    recorded.add(rule["record"])
                for name in promql_metric_names(str(rule["expr"])):
                    named.setdefault(name, f"{file.name}: {rule.get('record') or rule['alert']}")
    # the exporter's names cannot be listed here: they must at least be the exporter's
    exporter = {n for n in named if n.startswith("redis_")}
    unknown = set(named) - exposed - recorded - PROMETHEUS_BUILTIN_SERIES - exporter
    assert not unknown, {n: named[n] for n in unknown}
    assert {n for n in named if n.startswith("persona_")}, "the rules name no persona metric"


def prometheus_query(port: int, query: str) -> list[dict[str, Any]]:
    """The result of an instant query."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.mark.slow
def test_prometheus_scrapes_the_service_with_the_stack_config(stack: Stack) -> None:
    port = free_port()
    persona_job = dict(job("persona"), scrape_interval="1s")
    persona_job["static_configs"] = [{"targets": [f"127.0.0.1:{stack.ports['persona']}"]}]
    config = prometheus_config_copy(
        stack.folder,
        # the exporter does not run here; the service's job is the compose file's
        scrape_configs=[persona_job],
        **{"global": dict(PROMETHEUS["global"], evaluation_interval="1s")},
    )
    log = (stack.folder / "prometheus.log").open("ab")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={stack.folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    log.close()
    try:

        def scraped() -> bool:
            assert proc.poll() is None, (stack.folder / "prometheus.log").read_text()[-3000:]
            try:
                up = prometheus_query(port, 'up{job="persona"}')
            except (OSError, urllib.error.URLError):
                return False
            return bool(up) and up[0]["value"][1] == "1"

        wait_for(scraped, 60, "Prometheus to scrape the service")
        loaded = prometheus_query(port, 'max(persona_model_loaded{job="persona"})')
        assert loaded and loaded[0]["value"][1] == "1"
        if rule_files():
            # every loaded rule evaluates without an error
            url = f"http://127.0.0.1:{port}/api/v1/rules"

            def rules() -> list[dict[str, Any]]:
                with urllib.request.urlopen(url, timeout=10) as response:
                    groups = json.loads(response.read())["data"]["groups"]
                return [r for g in groups for r in g["rules"]]

            wait_for(lambda: all(r["health"] != "unknown" for r in rules()), 60, "the rules")
            failing = {r["name"]: r.get("lastError") for r in rules() if r["health"] != "ok"}
            assert not failing
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@pytest.mark.slow
def test_the_archiver_archives_into_its_volume(stack: Stack) -> None:
    port = free_port()
    archiver = stack.start(
        "archiver", port, ["--metrics-host", "127.0.0.1", "--metrics-port", str(port)]
    )
    try:
        # a consenting visitor's decision goes to the log, and from there to the archive
        request = urllib.request.Request(
            f"http://127.0.0.1:{stack.ports['persona']}/v1/decide?placement=home-hero",
            headers={"X-Persona-Consent": "all"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        archive = Path(service_env("archiver")["PERSONA_ARCHIVE_URL"])
        # the archive is on the volume mounted at the image's data folder
        here = stack.data_dir("archiver") / archive.relative_to("/app/data")
        wait_for(lambda: any(here.rglob("*.parquet")), 60, f"a Parquet file under {here}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert re.search(r"^persona_archive_entries_total [1-9]", metrics, re.M), metrics
    finally:
        code = stop(archiver, seconds(SERVICES["archiver"]["stop_grace_period"]))
    assert code == 0


@pytest.mark.slow
def test_the_healthchecks_follow_redis(stack: Stack) -> None:
    assert stack.healthcheck("redis") == 0 and stack.healthcheck("persona") == 0
    stack.stop_redis()
    try:
        assert stack.healthcheck("redis") != 0
        # /readyz answers 503 while Redis is away: the probe fails
        wait_for(lambda: stack.healthcheck("persona") != 0, 15, "persona to report not ready")
    finally:
        stack.start_redis()
    wait_for(lambda: stack.healthcheck("persona") == 0, 30, "persona to be ready again")
    assert stack.healthcheck("redis") == 0
