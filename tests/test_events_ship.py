"""Shipping the turn log to a private events store, and daily rollups (local directory store; no network).

The GCS events store, two hosts and the report over both are in tests/test_report_hosts.py.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from app.errors import InvalidObjectName
from app.events_ship import Shipper, ShipResult
from app.events_store import LocalEventsStore, check_name, raw_name, rollup_name
from app.report.compute import _Fold, finish, read_events
from app.report.rollup import load, rollup_bytes
from tests.report_support import FIXTURES

DAY = dt.date(2026, 11, 25)
NOON = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)


def line(i: int) -> bytes:
    return json.dumps({"ts": "2026-11-25T10:00:00.000Z", "business": "demo", "call": f"CA{i:032x}",
                       "sentences": []}).encode() + b"\n"


@pytest.fixture
def setup(tmp_path):
    events = tmp_path / "events"
    events.mkdir()
    return events, events / f"turns-{DAY.isoformat()}.jsonl", LocalEventsStore(tmp_path / "store")


def test_complete_lines_ship_once_as_create_only_byte_ranges(setup):
    events, path, store = setup
    path.write_bytes(line(1) + line(2) + line(3)[:20])  # a write in progress: its line is not complete
    shipper = Shipper(events, store, "host-a", clock=lambda: NOON)
    first = shipper.ship_once()
    assert first.chunks == (raw_name("host-a", DAY, 0, len(line(1) + line(2))),)
    assert store.get(first.chunks[0]) == line(1) + line(2)
    assert shipper.ship_once().chunks == ()  # nothing new: nothing uploaded
    with path.open("ab") as fh:
        fh.write(line(3)[20:] + line(4))
    second = shipper.ship_once()
    start = len(line(1) + line(2))
    assert second.chunks == (raw_name("host-a", DAY, start, start + len(line(3) + line(4))),)
    shipper.close()
    # A new process (the old one died after uploading): the store is the cursor, nothing ships twice.
    again = Shipper(events, store, "host-a", clock=lambda: NOON)
    assert again.ship_once().chunks == ()
    assert b"".join(store.get(n) for n in store.list("raw/")) == path.read_bytes()
    assert store.put_new(second.chunks[0], b"other bytes\n") is False  # create-only
    assert store.get(second.chunks[0]) == line(3) + line(4)
    again.close()


def test_a_closed_day_gets_its_rollup_after_the_grace_period(setup):
    events, path, store = setup
    path.write_bytes(line(1) + line(2))
    now = [dt.datetime(2026, 11, 26, 0, 5, tzinfo=dt.UTC)]  # 5 minutes after midnight: still within the grace
    shipper = Shipper(events, store, "host-a", clock=lambda: now[0])
    assert shipper.ship_once().rollups == ()
    now[0] = dt.datetime(2026, 11, 26, 0, 11, tzinfo=dt.UTC)
    assert shipper.ship_once().rollups == (rollup_name("host-a", DAY),)
    doc = load(store.get(rollup_name("host-a", DAY)))
    assert (doc["host"], doc["day"], doc["end"], doc["quality"]["used"]) == ("host-a", "2026-11-25", len(path.read_bytes()), 2)
    assert shipper.ship_once() == ShipResult()  # the day is done: nothing more
    shipper.close()


@pytest.mark.parametrize("name", ["../raw/x", "raw/host-a/2026-11-25/1-2.jsonl", "rollup/HOST/2026-11-25.json",
                                  "events/host-a/turns-2026-11-25.jsonl", "raw/host-a/2026-11-25/../../x.jsonl"])
def test_events_store_names_are_checked(name):
    with pytest.raises(InvalidObjectName):
        check_name(name)


def test_rollups_merge_to_the_raw_report_exactly():
    """Each fixture day folded alone into a rollup (JSON round trip), then merged: the same report as the raw fold."""
    files = sorted(FIXTURES.glob("*.jsonl"))
    since, until = dt.date(2026, 10, 31), dt.date(2026, 11, 3)
    raw = _Fold(since, until, None)
    raw.feed(read_events(files), "host-a")
    merged = _Fold(since, until, None)
    for path in files:
        day = dt.date.fromisoformat(path.name[6:16])
        merged.add_rollup(load(rollup_bytes(path.read_bytes(), "host-a", day)))
    a = finish(raw, since=since, until=until, business=None, price=0.03, min_calls=1)
    b = finish(merged, since=since, until=until, business=None, price=0.03, min_calls=1)
    assert a.to_dict() | {"sources": None} == b.to_dict() | {"sources": None}
    assert b.sources == {"rollups": 3} and a.overall.turns == 13


@pytest.mark.slow
def test_the_rollup_benchmark_runs_and_its_checks_hold(capsys):
    """A tiny ``bench_report --rollups``: raw and rollup paths agree (exit 0 needs it) and it says so."""
    from simulator.bench_report import main

    code = main(["--rollups", "--hosts", "2", "--days", "2", "--per-day", "4000", "--raw-days", "2",
                 "--raw-per-day", "2000"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["part1_counts_and_histograms_equal"] is True
    assert result["part1_percentiles_within_one_bucket"] is True
    assert result["part1_raw"]["events"] == result["part1_rollups"]["events"] == 2 * 2000
    assert result["part2_rollups"]["rollups"] == 4
