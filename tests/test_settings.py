"""Settings: typed, validated, and errors that name the variable."""

from __future__ import annotations

import pytest

from service.settings import SPECS, Settings, SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert s == Settings()
    assert s.port == 8080 and s.redis_url is None and s.workers == 1


def test_environment_is_read_and_parsed() -> None:
    s = load_settings(
        {
            "PERSONA_PORT": "9000",
            "PERSONA_REDIS_URL": "redis://10.0.0.5:6380/2",
            "PERSONA_COOKIE_SECRETS": "a" * 32 + ", " + "b" * 40,
            "PERSONA_CORS_ORIGINS": "https://www.example.com, http://localhost:3000/",
            "PERSONA_UVLOOP": "off",
            "PERSONA_LOG_LEVEL": "debug",
        }
    )
    assert s.port == 9000
    assert s.redis_url == "redis://10.0.0.5:6380/2"
    assert s.cookie_secrets == ("a" * 32, "b" * 40)
    assert s.cors_origins == ("https://www.example.com", "http://localhost:3000")
    assert s.uvloop is False and s.log_level == "DEBUG"


def test_overrides_win_over_environment() -> None:
    s = load_settings({"PERSONA_PORT": "9000"}, {"port": "9100"})
    assert s.port == 9100


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PERSONA_PORT": "http"}, "PERSONA_PORT"),
        ({"PERSONA_PORT": "70000"}, "PERSONA_PORT"),
        ({"PERSONA_REDIS_URL": "localhost:6379"}, "PERSONA_REDIS_URL"),
        ({"PERSONA_COOKIE_SECRETS": "short"}, "PERSONA_COOKIE_SECRETS"),
        ({"PERSONA_CORS_ORIGINS": "*"}, "PERSONA_CORS_ORIGINS"),
        ({"PERSONA_REDIS_URL": "rediss://h/0?ssl_ca=/x"}, "PERSONA_REDIS_URL"),
        ({"PERSONA_UVLOOP": "maybe"}, "PERSONA_UVLOOP"),
        ({"PERSONA_DECIDE_DEADLINE_MS": "0"}, "PERSONA_DECIDE_DEADLINE_MS"),
        (
            {"PERSONA_DECIDE_DEADLINE_MS": "2", "PERSONA_REDIS_TIMEOUT_MS": "3"},
            "PERSONA_REDIS_TIMEOUT_MS",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_every_setting_has_a_spec_and_help() -> None:
    fields = set(Settings.__dataclass_fields__)
    assert {s.field for s in SPECS} == fields
    assert all(s.env.startswith("PERSONA_") and len(s.help) > 10 for s in SPECS)
