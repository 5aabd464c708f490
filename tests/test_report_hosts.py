"""One report for every host: two app instances, one GCS emulator clip store, one private events store.

Each host answers real calls (signed webhooks, clips published to the emulator's public bucket),
ships its turn log to a separate private bucket, and ``flask report`` on either host shows every
call exactly once: the other host's shipped chunks plus its own log (shipped or not). Shipping is
idempotent and create-only; one shipper per host (a flock); rollups of closed days give the same
report as the raw events; an events store inside the public clip store is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from app import create_app
from app.config import load_settings
from app.errors import ConfigError
from app.events_ship import Shipper
from app.events_store import GCSEventsStore
from tests.conftest import ADMIN_TOKEN, ROOT, TWILIO_TOKEN
from tests.fakes import ToneProvider
from tests.gcs_support import emulator_admin_client, running_emulator
from tests.test_report_outcomes import calls

pytestmark = pytest.mark.slow
CLIPS, EVENTS = "warmline-clips", "warmline-events"


@pytest.fixture(scope="module")
def emulator():
    with running_emulator() as base_url:
        client = emulator_admin_client(base_url)
        client.create_bucket(CLIPS)
        client.create_bucket(EVENTS)
        yield base_url, client


def host(tmp_path, name: str):
    return create_app({
        "env": "testing", "data_dir": tmp_path / name, "twilio_auth_token": TWILIO_TOKEN, "admin_token": ADMIN_TOKEN,
        "store": f"gs://{CLIPS}/prod", "cdn_base_url": "http://clips.invalid", "events_store": f"gs://{EVENTS}/prod",
        "host_id": name, "runtime": {"providers": {"piper": ToneProvider()}},
    })


def report(app, *args: str) -> dict:
    result = app.test_cli_runner().invoke(args=["report", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def ship(app) -> str:
    result = app.test_cli_runner().invoke(args=["events", "ship"])
    assert result.exit_code == 0, result.output
    return result.output


def turns_by_host(data: dict) -> dict[str, int]:
    return {h: s["turns"] for h, s in data["by_host"].items()}


def test_two_hosts_one_report_every_call_exactly_once(emulator, tmp_path, monkeypatch):
    base_url, client = emulator
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", base_url)
    a, b = host(tmp_path, "host-a"), host(tmp_path, "host-b")
    calls(a, 3)
    calls(b, 2)
    assert ship(a).startswith("shipped 1 chunks") and ship(b).startswith("shipped 1 chunks")
    calls(a, 1)  # host A's unshipped tail
    calls(b, 1)  # host B's unshipped tail: only B sees it until B ships again

    on_a, on_b = report(a), report(b)
    assert turns_by_host(on_a) == {"host-a": 4, "host-b": 2}
    assert turns_by_host(on_b) == {"host-a": 3, "host-b": 3}
    assert on_a["hosts"] == on_b["hosts"] == ["host-a", "host-b"]

    ship(a)
    ship(b)
    assert ship(a).startswith("shipped 0 chunks")  # idempotent: nothing new, nothing twice
    on_a, on_b = report(a), report(b)
    assert turns_by_host(on_a) == turns_by_host(on_b) == {"host-a": 4, "host-b": 3}
    assert on_a["overall"]["turns"] == on_b["overall"]["turns"] == 7  # every call, exactly once
    assert on_a["overall"] == on_b["overall"]
    only_b = report(a, "--host", "host-b")
    assert (only_b["overall"]["turns"], only_b["host_filter"]) == (3, "host-b")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    page = a.test_client().get("/admin/report.json?host=host-b", headers=auth)
    assert page.status_code == 200 and page.get_json()["overall"] == only_b["overall"]
    assert a.test_client().get("/admin/report.json?host=../x", headers=auth).status_code == 400
    html = b.test_client().get("/admin/report", headers=auth).get_data(as_text=True)
    assert '<option value="host-a">host-a</option>' in html and '<option value="host-b">host-b</option>' in html

    store = GCSEventsStore(bucket=EVENTS, prefix="prod", client=client)
    chunks = store.list("raw/")
    assert len(chunks) == 4 and all(n.startswith(("raw/host-a/", "raw/host-b/")) for n in chunks)
    assert store.get(chunks[0]) + store.get(chunks[1]) == next((tmp_path / "host-a" / "events").glob("*.jsonl")).read_bytes()
    # Nothing of the turn log in the public clip bucket.
    assert [blob.name for blob in client.list_blobs(CLIPS) if not blob.name.startswith("prod/tts/")] == []

    # Close the day (a clock past midnight + grace): each host writes its rollup; the report then reads
    # the rollups (plus any tail) and shows the same figures as from the raw events.
    today = dt.datetime.now(dt.UTC).date()
    later = lambda: dt.datetime.combine(today + dt.timedelta(days=1), dt.time(1), dt.UTC)  # noqa: E731
    for app, name in ((a, "host-a"), (b, "host-b")):
        shipper = Shipper(tmp_path / name / "events", store, name, clock=later)
        assert shipper.ship_once().rollups == (f"rollup/{name}/{today.isoformat()}.json",)
        shipper.close()
    from_rollups = report(a)
    assert from_rollups["sources"].get("rollups") == 2
    assert from_rollups["overall"] == on_a["overall"]
    assert turns_by_host(from_rollups) == {"host-a": 4, "host-b": 3}
    for app in (a, b):
        app.extensions["warmline"].shutdown()


def test_events_store_inside_the_public_clip_store_is_refused(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings({"WARMLINE_STORE": "gs://warmline-clips/prod", "WARMLINE_EVENTS_STORE": "gs://warmline-clips/events"})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("WARMLINE_EVENTS_STORE=gs://warmline-clips/events is inside the public clip store")
    assert "use a separate private bucket" in message
    with pytest.raises(ConfigError, match="is inside the public clip store"):
        load_settings({"WARMLINE_STORE": "gs://warmline-clips", "WARMLINE_EVENTS_STORE": "gs://warmline-clips"})
    with pytest.raises(ConfigError, match="served at /cdn"):
        load_settings({"WARMLINE_DATA_DIR": str(tmp_path), "WARMLINE_EVENTS_STORE": str(tmp_path / "cdn" / "events")})
    # A separate bucket, or a private directory, is fine.
    assert load_settings({"WARMLINE_STORE": "gs://warmline-clips", "WARMLINE_EVENTS_STORE": "gs://warmline-events"})
    assert load_settings({"WARMLINE_DATA_DIR": str(tmp_path), "WARMLINE_EVENTS_STORE": str(tmp_path / "events-store")})
    # The app refuses to start with it: the command line names the variable.
    env = {"WARMLINE_STORE": "gs://warmline-clips/prod", "WARMLINE_EVENTS_STORE": "gs://warmline-clips/prod/events",
           "WARMLINE_ENV": "testing", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "events", "ship"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "WARMLINE_EVENTS_STORE=gs://warmline-clips/prod/events is inside the public clip store" in proc.stderr


LOCKER = """
import sys, time
from pathlib import Path
from app.events_ship import ShipLock
lock = ShipLock(Path(sys.argv[1]))
print(lock.try_acquire(), flush=True)
sys.stdin.readline()
"""


def test_one_shipper_per_host(tmp_path):
    """The ship lock is a flock: a second process (another gunicorn worker) is locked out until the first exits."""
    lock_path = tmp_path / "events" / ".ship.lock"
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(lock_path)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        from app.events_store import LocalEventsStore

        store = LocalEventsStore(tmp_path / "store")
        (tmp_path / "events").mkdir(exist_ok=True)
        (tmp_path / "events" / f"turns-{dt.datetime.now(dt.UTC).date().isoformat()}.jsonl").write_bytes(b'{"x": 1}\n')
        locked_out = Shipper(tmp_path / "events", store, "host-a").ship_once()
        assert locked_out.locked_out and locked_out.chunks == () and store.list("raw/") == []
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    shipper = Shipper(tmp_path / "events", store, "host-a")
    assert len(shipper.ship_once().chunks) == 1  # the holder exited: the kernel dropped its lock
    shipper.close()


def test_gunicorn_ships_continuously_once_per_host_and_on_shutdown(tmp_path):
    """Real gunicorn, 2 workers, a 0.5 s ship interval: the store's chunks are disjoint byte ranges that add
    up to exactly the host's log (two workers, one shipper), and what is left at shutdown is shipped."""
    from app.events_store import RAW_RE, LocalEventsStore
    from tests.conftest import new_call_sid
    from tests.faults_support import Caller, wait_until
    from tests.server_support import GunicornServer

    store = LocalEventsStore(tmp_path / "events-store")
    log_dir = tmp_path / "var" / "events"

    def shipped() -> bytes:
        return b"".join(store.get(n) for n in store.list("raw/"))

    def local() -> bytes:
        return b"".join(p.read_bytes() for p in sorted(log_dir.glob("turns-*.jsonl")))

    env = {"WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "WARMLINE_EVENTS_STORE": str(store.root),
           "WARMLINE_EVENTS_SHIP_INTERVAL_S": "0.5", "WARMLINE_HOST_ID": "web-1"}
    with GunicornServer(tmp_path / "var", env=env, workers=2, threads=4) as server:
        for question in ("What are your opening hours?", "Where are you located?"):
            Caller(server.base_url, new_call_sid()).turn(question)
        wait_until(lambda: local() and shipped() == local(), 30, "the shipping worker to catch up")
        Caller(server.base_url, new_call_sid()).turn("How much is a check-up?")
    assert shipped() == local()  # the last turn shipped at shutdown (or by the interval), nothing twice
    assert len(local().splitlines()) == 3
    names = store.list("raw/")
    assert all(n.startswith("raw/web-1/") for n in names)
    ends = [tuple(int(x) for x in RAW_RE.fullmatch(n).group(3, 4)) for n in names]
    assert all(a[1] == b[0] for a, b in zip(ends, ends[1:]))  # contiguous, no overlap
