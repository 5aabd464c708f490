"""Settings from WARMLINE_* and the business file: fail fast, naming the variable or the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.business import load_businesses
from app.config import load_settings
from app.errors import BusinessConfigError, ConfigError
from tests.conftest import ROOT

SAMPLE = (ROOT / "businesses" / "businesses.toml").read_text()


def test_defaults_serve_development_out_of_the_box():
    s = load_settings({})
    assert (s.env, s.store, s.instant_budget_ms, s.hop_s, s.turn_deadline_s) == ("development", "local", 300, 2.5, 8.0)
    assert s.state_location == str(ROOT / "var" / "state")


def test_environment_is_parsed_and_typed():
    s = load_settings({"WARMLINE_INSTANT_BUDGET_MS": "150", "WARMLINE_HOP_S": "1.5", "WARMLINE_STATE_URL": "redis://127.0.0.1:6379/0",
                       "WARMLINE_STORE": "gs://bucket/prefix"})
    assert (s.instant_budget_ms, s.hop_s, s.state_location, s.store) == (150, 1.5, "redis://127.0.0.1:6379/0", "gs://bucket/prefix")


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"WARMLINE_INSTANT_BUDGET_MS": "fast"}, "WARMLINE_INSTANT_BUDGET_MS='fast' is not a valid int"),
        ({"WARMLINE_ENV": "staging"}, "WARMLINE_ENV='staging' must be one of development, production, testing"),
        ({"WARMLINE_STORE": "s3://x"}, "WARMLINE_STORE='s3://x' must be 'local' or 'gs://bucket[/prefix]'"),
        ({"WARMLINE_ENV": "production"}, "WARMLINE_TWILIO_AUTH_TOKEN is required in production"),
        ({"WARMLINE_ENV": "production", "WARMLINE_TWILIO_AUTH_TOKEN": "t"}, "WARMLINE_ADMIN_TOKEN is required in production"),
        ({"WARMLINE_ENV": "production", "WARMLINE_TWILIO_AUTH_TOKEN": "t", "WARMLINE_ADMIN_TOKEN": "a"}, "WARMLINE_PUBLIC_URL is required"),
        ({"WARMLINE_HOP_S": "9"}, "leave no room inside Twilio's 15 s limit"),
    ],
)
def test_bad_settings_fail_fast_naming_the_variable(environ, message):
    with pytest.raises(ConfigError) as info:
        load_settings(environ)
    assert message in str(info.value)


def test_production_starts_with_its_secrets():
    s = load_settings({"WARMLINE_ENV": "production", "WARMLINE_TWILIO_AUTH_TOKEN": "t", "WARMLINE_ADMIN_TOKEN": "a",
                       "WARMLINE_PUBLIC_URL": "https://warmline.example.com"})
    assert s.production and s.public_url == "https://warmline.example.com"


def test_sample_business_loads():
    businesses = load_businesses(ROOT / "businesses" / "businesses.toml")
    demo = businesses.get("demo")
    assert (demo.voice.provider, demo.voice.model, demo.language, len(demo.fillers)) == ("piper", "en_US-joe-medium", "en-US", 4)
    assert businesses.by_number("+15005550006") is demo


@pytest.mark.parametrize(
    "old, new, field",
    [
        ('provider = "piper"', 'provider = "acme"', "voice.provider"),
        ('model = "en_US-joe-medium"', 'model = "../../etc"', "voice.model"),
        ('language = "en-US"', 'language = "english"', "say.language"),
        ('fillers = [', 'fillers = ["!!!", ', "fillers[0]"),
        ("rollout_percent = 100", "rollout_percent = 150", "rollout.rollout_percent"),
        ("use_proactive_filler = true", 'use_proactive_filler = "yes"', "rollout.use_proactive_filler"),
        ('numbers = ["+15005550006"]', 'numbers = ["5550006"]', "numbers"),
        ('splice = "sentence"', 'splice = "word"', "splice"),
        ('greeting = "Thanks', 'greetin = "Thanks', "greetin"),
        ('still_there = "Are you still there?"', 'still_there = ""', "prompts.still_there"),
        ('keywords = ["where"', 'keywords = [""', "faq[0].keywords"),
    ],
)
def test_malformed_business_names_the_business_and_field(tmp_path, old, new, field):
    assert old in SAMPLE
    path = tmp_path / "b.toml"
    path.write_text(SAMPLE.replace(old, new, 1))
    with pytest.raises(BusinessConfigError) as info:
        load_businesses(path)
    assert (info.value.business, info.value.field) == ("demo", field)
    assert str(info.value).startswith(f"business 'demo': field '{field}': ")


@pytest.mark.parametrize("text, message", [("[demo\nname=", "is not valid TOML"), ("", "defines no business")])
def test_unreadable_business_file(tmp_path, text, message):
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_businesses(path)


def test_missing_business_file_is_named():
    with pytest.raises(ConfigError, match="WARMLINE_BUSINESSES: no such file"):
        load_businesses(Path("/nonexistent/b.toml"))


def test_app_refuses_to_start_with_a_malformed_business_file(tmp_path, make_app):
    path = tmp_path / "b.toml"
    path.write_text(SAMPLE.replace("rollout_percent = 100", "rollout_percent = -1"))
    with pytest.raises(BusinessConfigError, match="rollout.rollout_percent"):
        make_app(businesses=path)
