"""Settings from WARMLINE_* and the business file: fail fast, naming the variable or the field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.business import load_businesses
from app.config import DEV_ADMIN_TOKEN, DEV_TWILIO_TOKEN, is_loopback_bind, load_settings
from app.errors import BusinessConfigError, ConfigError
from tests.conftest import ROOT

SAMPLE = (ROOT / "businesses" / "businesses.toml").read_text()
TWILIO = "t" * 32
ADMIN = "a" * 24


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
        ({"WARMLINE_ENV": "production", "WARMLINE_TWILIO_AUTH_TOKEN": TWILIO}, "WARMLINE_ADMIN_TOKEN is required in production"),
        ({"WARMLINE_ENV": "production", "WARMLINE_TWILIO_AUTH_TOKEN": TWILIO, "WARMLINE_ADMIN_TOKEN": ADMIN},
         "WARMLINE_PUBLIC_URL is required"),
        ({"WARMLINE_ENV": "production", "WARMLINE_TWILIO_AUTH_TOKEN": "t", "WARMLINE_ADMIN_TOKEN": ADMIN,
          "WARMLINE_PUBLIC_URL": "https://w.example.com"},
         "WARMLINE_TWILIO_AUTH_TOKEN is 1 characters; a secret needs at least 16"),
        ({"WARMLINE_HOP_S": "9"}, "leave no room inside Twilio's 15 s limit"),
    ],
)
def test_bad_settings_fail_fast_naming_the_variable(environ, message):
    with pytest.raises(ConfigError) as info:
        load_settings(environ)
    assert message in str(info.value)


def test_production_starts_with_its_secrets():
    s = load_settings({"WARMLINE_ENV": "production", "WARMLINE_TWILIO_AUTH_TOKEN": TWILIO, "WARMLINE_ADMIN_TOKEN": ADMIN,
                       "WARMLINE_PUBLIC_URL": "https://warmline.example.com"})
    assert s.production and s.public_url == "https://warmline.example.com"


@pytest.mark.parametrize("value, problem", [
    ("0", "WARMLINE_HOP_S=0.0 must be a finite number of seconds greater than 0"),
    ("-1", "WARMLINE_HOP_S=-1.0 must be a finite number of seconds greater than 0"),
    ("nan", "WARMLINE_HOP_S='nan' is not a valid finite number"),
    ("inf", "WARMLINE_HOP_S='inf' is not a valid finite number"),
    ("soon", "WARMLINE_HOP_S='soon' is not a valid finite number"),
])
def test_hop_must_be_a_positive_finite_number(value, problem):
    with pytest.raises(ConfigError) as info:
        load_settings({"WARMLINE_HOP_S": value})
    assert str(info.value).splitlines() == [problem]


@pytest.mark.parametrize("environ, problem", [
    ({"WARMLINE_TURN_DEADLINE_S": "14"}, "WARMLINE_HOP_S / WARMLINE_TURN_DEADLINE_S leave no room inside Twilio's 15 s "
                                         "limit (hop 2.5 s must be under 7 s, deadline 14 s at most 12 s)"),
    ({"WARMLINE_SILENCE_BUDGET_S": "8"}, "WARMLINE_SILENCE_BUDGET_S=8.0 must be shorter than WARMLINE_TURN_DEADLINE_S=8"),
    ({"WARMLINE_SILENCE_BUDGET_S": "0"}, "WARMLINE_SILENCE_BUDGET_S=0.0 must be a finite number of seconds greater than 0"),
    ({"WARMLINE_LLM_TIMEOUT_S": "10", "WARMLINE_CONTROL_TTS_TIMEOUT_S": "5"},
     "WARMLINE_LLM_TIMEOUT_S + WARMLINE_CONTROL_TTS_TIMEOUT_S = 15 s: the control arm waits for both inside one "
     "webhook; keep the sum under Twilio's 15 s"),
    ({"WARMLINE_INSTANT_BUDGET_MS": "20000"},
     "WARMLINE_INSTANT_BUDGET_MS=20000 must be at most 10000 (the webhook answers within Twilio's 15 s)"),
    ({"WARMLINE_TURN_WORKERS": "0"}, "WARMLINE_TURN_WORKERS=0 must be at least 1"),
    ({"WARMLINE_WORKERS": "0"}, "WARMLINE_WORKERS=0 must be at least 1"),
    ({"WARMLINE_PRICE_PER_1K_CHARS": "-0.5"}, "WARMLINE_PRICE_PER_1K_CHARS=-0.5 must be a finite number, not negative"),
    ({"WARMLINE_LLM_URL": "localhost:9000"}, "WARMLINE_LLM_URL='localhost:9000' must be an http(s):// URL with a host"),
    ({"WARMLINE_STATE_URL": "memcached://x"},
     "WARMLINE_STATE_URL='memcached://x' must be redis://host:port/db, rediss://... or a directory"),
])
def test_each_out_of_range_setting_is_one_line_naming_it(environ, problem):
    with pytest.raises(ConfigError) as info:
        load_settings(environ)
    assert str(info.value).splitlines() == [problem]


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as info:
        load_settings({"WARMLINE_ENV": "production", "WARMLINE_HOP_S": "nan", "WARMLINE_TURN_WORKERS": "-2",
                       "WARMLINE_STORE": "s3://x", "WARMLINE_WORKERS": "many"})
    assert str(info.value).splitlines() == [
        "WARMLINE_HOP_S='nan' is not a valid finite number",
        "WARMLINE_WORKERS='many' is not a valid int",
        "WARMLINE_TURN_WORKERS=-2 must be at least 1",
        "WARMLINE_STORE='s3://x' must be 'local' or 'gs://bucket[/prefix]'",
        "WARMLINE_TWILIO_AUTH_TOKEN is required in production (the development token is published)",
        "WARMLINE_ADMIN_TOKEN is required in production (the development token is published)",
        "WARMLINE_PUBLIC_URL is required in production (signatures are checked against it)",
    ]


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1:8000", True), ("127.8.9.10:80", True), ("localhost:8000", True), ("[::1]:8000", True),
    ("0.0.0.0:8000", False), ("[::]:8000", False), (":8000", False), ("10.1.2.3:8000", False),
    ("warmline.example.com:443", False), ("unix:/run/warmline.sock", False), ("fd://3", False), ("8000", False),
])
def test_loopback_bind_addresses(address, loopback):
    assert is_loopback_bind(address) is loopback


@pytest.mark.parametrize("env", ["development", "testing"])
@pytest.mark.parametrize("environ, exposed", [
    ({"WARMLINE_BIND": "0.0.0.0:8000"}, "WARMLINE_BIND=0.0.0.0:8000 is not loopback"),
    ({"WARMLINE_BIND": "127.0.0.1:8000 [::]:8000"}, "WARMLINE_BIND=[::]:8000 is not loopback"),
    ({"WARMLINE_BIND": "unix:/run/w.sock"}, "WARMLINE_BIND=unix:/run/w.sock is not loopback"),
    ({"WARMLINE_PUBLIC_URL": "https://warmline.example.com"},
     "WARMLINE_PUBLIC_URL=https://warmline.example.com is not on loopback"),
])
def test_published_dev_tokens_only_work_on_loopback(env, environ, exposed):
    with pytest.raises(ConfigError) as info:
        load_settings({"WARMLINE_ENV": env, **environ})
    assert str(info.value).splitlines() == [
        f"{var} is the published development token, which only works on loopback; {exposed}: set a real secret"
        for var in ("WARMLINE_TWILIO_AUTH_TOKEN", "WARMLINE_ADMIN_TOKEN")
    ]


def test_one_dev_token_left_is_still_refused_off_loopback():
    with pytest.raises(ConfigError) as info:
        load_settings({"WARMLINE_BIND": "0.0.0.0:8000", "WARMLINE_TWILIO_AUTH_TOKEN": TWILIO})
    assert str(info.value).splitlines() == [
        "WARMLINE_ADMIN_TOKEN is the published development token, which only works on loopback; "
        "WARMLINE_BIND=0.0.0.0:8000 is not loopback: set a real secret"]


def test_real_secrets_may_serve_any_address_and_dev_tokens_serve_loopback():
    exposed = load_settings({"WARMLINE_BIND": "0.0.0.0:8000", "WARMLINE_TWILIO_AUTH_TOKEN": TWILIO,
                             "WARMLINE_ADMIN_TOKEN": ADMIN})
    assert exposed.bind == ("0.0.0.0:8000",) and exposed.env == "development"
    local = load_settings({"WARMLINE_BIND": "127.0.0.1:8350", "WARMLINE_PUBLIC_URL": "http://localhost:8350"})
    assert (local.twilio_auth_token, local.admin_token) == (DEV_TWILIO_TOKEN, DEV_ADMIN_TOKEN)
    # gunicorn's own bind (``-b``) arrives as an override and is judged the same way
    with pytest.raises(ConfigError, match="WARMLINE_BIND=0.0.0.0:9 is not loopback"):
        load_settings({}, overrides={"bind": ["0.0.0.0:9"]})


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
        ('splice = "sentence"', 'splice = "sentence"\nearly_clause = "yes"', "early_clause"),
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


def test_the_hosts_syntheses_in_flight_are_split_over_its_workers():
    assert load_settings(environ={"WARMLINE_SYNTH_WORKERS": "16", "WARMLINE_WORKERS": "3"}).synth_per_process == 6
    assert load_settings(environ={"WARMLINE_SYNTH_WORKERS": "15", "WARMLINE_WORKERS": "3"}).synth_per_process == 5
    assert load_settings(environ={"WARMLINE_SYNTH_WORKERS": "2", "WARMLINE_WORKERS": "5"}).synth_per_process == 1
    assert load_settings(environ={}).workers == len(os.sched_getaffinity(0)) + 1  # gunicorn.conf.py's default
