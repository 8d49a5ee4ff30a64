"""Every Redis client honours the whole URL: password, ACL user, database, TLS with a CA and
a client certificate; a connection whose setup fails is closed. Real redis-servers."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from service.local_redis import LocalRedis, free_port
from service.store.address import parse_redis_url
from service.store.keyspace import profile_key
from tests.helpers import catalog_without_randomness, fan_profile, store_profile

VID = "url-visitor-0000000000001"
PASSWORD = "s3cret-pass-word"
HERO = {"placements": ["home-hero"], "visitor_id": VID}


@dataclass(frozen=True)
class Tls:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all made here."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(name: str, folder: Path, extfile: str) -> None:
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=folder)
    _openssl(
        "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-out", f"{name}.csr",
        cwd=folder,
    )  # fmt: skip
    (folder / f"{name}.ext").write_text(extfile)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}.pem",
        cwd=folder,
    )  # fmt: skip


def make_tls(folder: Path) -> Tls:
    folder.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=persona test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
            cwd=folder,
        )  # fmt: skip
    _signed("server", folder, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed("client", folder, "extendedKeyUsage=clientAuth\n")
    return Tls(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
        folder / "other-ca.pem",
    )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[LocalRedis]:
    """A redis-server that wants a password, and has an ACL user ``persona``."""
    server = LocalRedis(
        tmp_path / "redis", appendonly=False, extra_args=("--requirepass", PASSWORD)
    )
    server.start()
    admin = redis.Redis(port=server.port, password=PASSWORD)
    admin.execute_command("ACL", "SETUSER", "persona", "on", ">persona-pw", "~*", "&*", "+@all")
    admin.close()
    yield server
    server.stop()


@pytest.fixture
def tls_server(tmp_path: Path, tls: Tls) -> Iterator[tuple[LocalRedis, int]]:
    """A redis-server with a TLS port that requires a client certificate from the CA."""
    tls_port = free_port()
    server = LocalRedis(
        tmp_path / "redis",
        appendonly=False,
        extra_args=(
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(tls.server_cert),
            "--tls-key-file", str(tls.server_key),
            "--tls-ca-cert-file", str(tls.ca),
            "--tls-auth-clients", "yes",
        ),
    )  # fmt: skip
    server.start()
    yield server, tls_port
    server.stop()


async def personalized_and_stored(
    app_client: Any, make_settings: Any, url: str, catalog: Path
) -> None:
    """Decide for a stored visitor (pipelined read), post events (pipelined scripts and
    redis-py), read readiness (redis-py): all through ``url``."""
    client = await app_client(make_settings(redis_url=url, catalog_path=catalog), server=True)
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    decision = (await (await client.post("/v1/decide", json=HERO)).json())["decisions"]
    assert decision["home-hero"]["fallback"] is None
    assert decision["home-hero"]["variant_id"] == "hero-climbing"
    view = {"type": "view", "event_id": "url-view-0001", "visitor_id": VID, "category": "yoga"}
    login = {"type": "identify", "event_id": "url-login-01", "visitor_id": VID, "customer_id": "c1"}
    resp = await client.post("/v1/events", json={"events": [view, login]})
    assert resp.status == 202 and (await resp.json())["accepted"] == 2


def test_the_url_is_parsed_whole_and_refused_when_wrong() -> None:
    a = parse_redis_url(
        "rediss://user:p%40ss@10.0.0.5:6380/4?ssl_ca_certs=/ca.pem&ssl_cert_reqs=none"
    )
    assert (a.host, a.port, a.db, a.username, a.password) == ("10.0.0.5", 6380, 4, "user", "p@ss")
    assert a.tls is not None and a.tls.ca_certs == "/ca.pem" and a.tls.cert_reqs == "none"
    assert "p@ss" not in a.redacted() and "***" in a.redacted()
    for bad, words in (
        ("redis://h/0?ssl_ca_certs=/x", "need a rediss"),
        ("rediss://h/0?ssl_ca_cert=/x", "unknown query options"),
        ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("redis://h/zero", "not a number"),
        ("http://h/0", "must start with"),
        ("redis://h:99999/0", "port"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_redis_url(bad)


async def test_password_acl_user_and_database_reach_every_client(
    app_client: Any, make_settings: Any, secured: LocalRedis, tmp_path: Path
) -> None:
    for url, db in (
        (f"redis://:{PASSWORD}@127.0.0.1:{secured.port}/0", 0),
        (f"redis://persona:persona-pw@127.0.0.1:{secured.port}/3", 3),
    ):
        store_profile(
            f"redis://:{PASSWORD}@127.0.0.1:{secured.port}/{db}", VID, fan_profile("climbing")
        )
        await personalized_and_stored(
            app_client, make_settings, url, catalog_without_randomness(tmp_path)
        )
        admin = redis.Redis(port=secured.port, password=PASSWORD, db=db)
        assert admin.exists("persona:erasure:pending") == 0
        linked = admin.get(profile_key(VID))
        assert linked is not None and b"alias" in linked  # the login went through redis-py
        admin.close()


async def test_a_wrong_password_falls_back_and_leaks_no_connection(
    app_client: Any, make_settings: Any, secured: LocalRedis
) -> None:
    store_profile(f"redis://:{PASSWORD}@127.0.0.1:{secured.port}/0", VID, fan_profile("climbing"))
    url = f"redis://:wrong-password@127.0.0.1:{secured.port}/0"
    client = await app_client(
        make_settings(redis_url=url, breaker_failures=1000, redis_timeout_ms=40.0), server=True
    )
    admin = redis.Redis(port=secured.port, password=PASSWORD)
    before = int(admin.info("clients")["connected_clients"])
    for i in range(25):
        answer = await (await client.post("/v1/decide", json=HERO)).json()
        assert answer["decisions"]["home-hero"]["fallback"] == "redis_unavailable"
        view = {"type": "view", "event_id": f"wrong-pw-{i:04d}", "visitor_id": VID}
        assert (await client.post("/v1/events", json={"events": [view]})).status == 503
        await asyncio.sleep(0.06)  # past the reconnect back-off: every call tries again
    assert (await client.get("/readyz")).status == 503
    after = int(admin.info("clients")["connected_clients"])
    assert after - before <= 4, (before, after)  # not one per failed attempt
    admin.close()


async def test_tls_with_a_ca_and_a_client_certificate(
    app_client: Any,
    make_settings: Any,
    tls_server: tuple[LocalRedis, int],
    tls: Tls,
    tmp_path: Path,
) -> None:
    server, tls_port = tls_server
    store_profile(server.url, VID, fan_profile("climbing"))
    base = f"rediss://127.0.0.1:{tls_port}/0"
    with_client_cert = (
        f"{base}?ssl_ca_certs={tls.ca}&ssl_certfile={tls.client_cert}&ssl_keyfile={tls.client_key}"
    )
    catalog = catalog_without_randomness(tmp_path)
    await personalized_and_stored(app_client, make_settings, with_client_cert, catalog)
    plain = redis.Redis(port=server.port)
    before = {k: plain.dump(k) for k in plain.scan_iter("persona:{p*")}
    # a server whose certificate another CA signed is refused: verification is on
    wrong_ca = (
        f"{base}?ssl_ca_certs={tls.other_ca}&ssl_certfile={tls.client_cert}"
        f"&ssl_keyfile={tls.client_key}"
    )
    client = await app_client(make_settings(redis_url=wrong_ca), server=True)
    assert (await client.get("/readyz")).status == 503
    answer = await (await client.post("/v1/decide", json=HERO)).json()
    assert answer["decisions"]["home-hero"]["fallback"] == "redis_unavailable"
    view = {"type": "view", "event_id": "tls-view-0002", "visitor_id": VID}
    assert (await client.post("/v1/events", json={"events": [view]})).status == 503
    assert {k: plain.dump(k) for k in plain.scan_iter("persona:{p*")} == before
    plain.close()
