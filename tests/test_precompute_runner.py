"""The precompute runner: idempotent, resumable after SIGKILL, locked, retrying through 429 storms;
the CLI, the scheduler, and shipping turn events to a GCS bucket."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import precompute as precompute_pkg
from app.errors import ConfigError, PrecomputeLocked
from app.events import EventLog
from app.responders.faq import FaqResponder
from app.speech.canon import canon
from app.speech.keys import content_key
from app.speech.providers.deepgram import DeepgramProvider, make_deepgram_client
from app.speech.voices import Voice
from app.speech.wav import validate_ulaw_wav
from precompute import mine
from precompute.plan import PlanItem, build_plan
from precompute.runner import (
    Backoff,
    Progress,
    RunLock,
    RunOptions,
    RunSummary,
    lock_for,
    plan_for,
    precompute,
    run_plan,
)
from precompute.scheduler import build_scheduler, nightly_job, trigger
from app.events_ship import host_id
from simulator.deepgram_emulator import DeepgramEmulator
from tests.fakes import ToneProvider
from tests.precompute_support import ROOT, ToneSpeaker, write_deepgram_business

# 4 fillers, 2 short fillers, greeting, 8 prompts, 9 FAQ sentences, 1 hours sentence, and 12 sentences of the FAQ
# responder's own fixed phrasing (FaqResponder.fixed_texts, duplicates removed)
FIXED_DEMO_CLIPS = 37


@pytest.fixture
def pc_app(app):
    precompute_pkg.init_app(app)
    return app


def rt_of(app):
    return app.extensions["warmline"]


def stored_clips(rt) -> list[str]:
    return sorted(rt.store.list("tts/"))


def test_a_second_run_makes_no_provider_call(pc_app, provider):
    rt = rt_of(pc_app)
    first = precompute(rt, RunOptions(fixed_only=True))
    assert (first.planned, first.new, first.already, first.failed) == (FIXED_DEMO_CLIPS, FIXED_DEMO_CLIPS, 0, 0)
    assert len(provider.calls) == FIXED_DEMO_CLIPS
    assert first.chars == first.planned_chars == sum(len(t) for t in provider.calls)
    names = stored_clips(rt)
    assert len(names) == FIXED_DEMO_CLIPS
    second = precompute(rt, RunOptions(fixed_only=True))
    assert (second.planned, second.new, second.failed) == (0, 0, 0)
    assert len(provider.calls) == FIXED_DEMO_CLIPS
    # with the key index lost, the store is the truth: everything is "already there", still no call
    rt.index.clear()
    third = precompute(rt, RunOptions(fixed_only=True))
    assert (third.planned, third.new, third.already, third.failed) == (FIXED_DEMO_CLIPS, 0, FIXED_DEMO_CLIPS, 0)
    assert len(provider.calls) == FIXED_DEMO_CLIPS
    assert stored_clips(rt) == names


def test_summary_counts_failures_and_estimates_cost(make_app):
    from app.errors import SynthesisRejected

    app = make_app(runtime={"providers": {"piper": ToneProvider(fail=SynthesisRejected("bad voice", status=400))}},
                   price_per_1k_chars=2.0)
    summary = precompute(rt_of(app), RunOptions(fixed_only=True))
    assert (summary.new, summary.failed, summary.chars) == (0, FIXED_DEMO_CLIPS, 0)
    assert summary.est_cost == 0.0
    assert summary.planned_cost == round(summary.planned_chars / 1000 * 2.0, 4)
    assert all("SynthesisRejected: bad voice" in f["error"] for f in summary.failures)
    assert summary.lines()[0] == f"planned {FIXED_DEMO_CLIPS}  new 0  already there 0  failed {FIXED_DEMO_CLIPS}"


def _start_child(data_dir: Path, calls: Path, delay_s: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.precompute_support", str(data_dir), str(calls), str(delay_s)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _wait_for_calls(calls: Path, n: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if calls.exists() and len(calls.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"child exited early with {proc.returncode}")
        time.sleep(0.02)
    raise AssertionError(f"child made fewer than {n} provider calls in {timeout} s")


def _wait_for_published(root: Path, n: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(root.rglob("*.wav"))) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"child exited early with {proc.returncode}")
        time.sleep(0.01)
    raise AssertionError(f"child published fewer than {n} clips in {timeout} s")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_killed_run_leaves_no_partial_objects_and_the_rerun_finishes(make_app, tmp_path):
    calls = tmp_path / "calls.txt"
    child = _start_child(tmp_path / "var", calls, delay_s=0.3)
    try:
        _wait_for_published(tmp_path / "var" / "cdn", 3, child)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        _kill(child)
    provider = ToneProvider()
    # The child died holding the singleflight locks of its in-flight keys: they are flocks, released
    # by the kernel with the process, so the rerun does not wait for them.
    app = make_app(runtime={"providers": {"piper": provider}})
    rt = rt_of(app)
    root = Path(rt.store.root)
    published_by_child = stored_clips(rt)
    assert 0 < len(published_by_child) < FIXED_DEMO_CLIPS
    for name in published_by_child:  # what the killed run published is complete
        validate_ulaw_wav(rt.store.get(name))
    summary = precompute(rt, RunOptions(fixed_only=True))  # the lock died with the child
    assert summary.failed == 0
    assert summary.new == FIXED_DEMO_CLIPS - len(published_by_child)
    # a clip the child published but was killed before indexing is planned again, found in the store
    assert summary.planned == summary.new + summary.already
    # nothing the child published was synthesized again; nothing twice
    child_texts = {line.split(" ", 1)[1] for line in calls.read_text().splitlines()}
    assert len(provider.calls) == len(set(provider.calls)) == summary.new
    child_keys = {n.rsplit("/", 1)[1][:-4] for n in published_by_child}
    assert not {content_key(t, rt.businesses.get("demo").voice) for t in provider.calls} & child_keys
    assert len(child_texts) >= len(published_by_child)
    names = stored_clips(rt)
    assert len(names) == FIXED_DEMO_CLIPS
    plan = build_plan([rt.businesses.get("demo")], None, fixed_only=True, extra_fixed=FaqResponder().fixed_texts)
    assert {n.rsplit("/", 1)[1][:-4] for n in names} == plan.keys()
    for name in names:
        validate_ulaw_wav(rt.store.get(name))
    # Every file under an object name is complete (validated above). A write cut short by SIGKILL can
    # only leave a ".tmp-*.part" file, which is never an object: not listed, not served.
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert all(Path(f).name.startswith(".tmp-") and f.endswith(".part") for f in files - set(names))


def test_a_concurrent_second_run_is_refused(pc_app, tmp_path):
    rt = rt_of(pc_app)
    calls = tmp_path / "calls.txt"
    child = _start_child(Path(rt.settings.data_dir), calls, delay_s=0.3)
    try:
        _wait_for_calls(calls, 1, child)
        result = pc_app.test_cli_runner().invoke(args=["precompute", "run", "--fixed-only"])
        assert result.exit_code == 2
        assert f"another precompute run is in progress (pid {child.pid}); not starting" in result.output
        with pytest.raises(PrecomputeLocked):
            precompute(rt, RunOptions(fixed_only=True))
        response = pc_app.test_client().post("/admin/precompute", headers={"Authorization": "Bearer test-admin-token"})
        assert response.status_code == 409
        assert response.get_json()["status"] == "already running"
    finally:
        _kill(child)
    assert RunLock(lock_for(rt).path).acquire().held  # free again once the holder is gone


def test_run_lock_in_one_process(tmp_path):
    first = RunLock(tmp_path / "x.lock").acquire()
    with pytest.raises(PrecomputeLocked, match=f"pid {os.getpid()}"):
        RunLock(tmp_path / "x.lock").acquire()
    first.release()
    with RunLock(tmp_path / "x.lock") as again:
        assert again.held


@pytest.fixture
def aura_app(make_app, tmp_path):
    apps = []

    def make(emulator: DeepgramEmulator):
        provider = DeepgramProvider(client=make_deepgram_client(), api_key="test-key", base_url=emulator.base_url)
        app = make_app(runtime={"providers": {"deepgram": provider}},
                       businesses=write_deepgram_business(tmp_path))
        apps.append((app, provider))
        return app

    yield make
    for app, provider in apps:
        provider._client.close()
        rt_of(app).shutdown()


def test_a_429_and_503_storm_is_absorbed_with_retries(aura_app):
    # the emulator admits 4 requests at once (the rest get 429) and fails 30 % of admitted ones with 429/503
    with DeepgramEmulator(concurrency_limit=4, ttfb_ms=30, per_char_ms=0.2, failure_rate=0.3,
                          failure_modes=("429", "503"), seed=7, speaker=ToneSpeaker()) as emulator:
        app = aura_app(emulator)
        rt = rt_of(app)
        plan = plan_for(rt, RunOptions(fixed_only=True))
        summary = run_plan(plan.items, rt.synthesizer, backoff=Backoff(attempts=12, base_s=0.05, max_s=1.0), seed=1)
        stats = emulator.stats()
    assert summary.failed == 0, summary.failures
    assert summary.new == summary.planned == len(plan.items) >= 18
    assert summary.retries > 0
    assert stats["by_status"]["429"] + stats["by_status"].get("503", 0) == summary.retries
    assert stats["failures"].get("429", 0) > 0 and stats["failures"].get("503", 0) > 0
    assert stats["by_status"]["200"] == summary.new
    assert stats["max_in_flight"] <= 4
    assert len(stored_clips(rt)) == summary.new


def test_provider_calls_in_flight_are_bounded_by_the_provider(aura_app):
    with DeepgramEmulator(concurrency_limit=15, ttfb_ms=300, per_char_ms=0, speaker=ToneSpeaker()) as emulator:
        app = aura_app(emulator)
        rt = rt_of(app)
        voice = rt.businesses.get("aura").voice
        texts = [f"Sentence number {n} of the batch." for n in range(60)]
        items = [PlanItem("aura", voice, "mined", canon(t), content_key(t, voice), 1) for t in texts]
        summary = run_plan(items, rt.synthesizer)
        stats = emulator.stats()
    assert summary.new == 60 and summary.retries == 0
    assert stats["by_status"] == {"200": 60}  # never a 429 from going over the limit
    assert stats["max_in_flight"] == DeepgramProvider.max_concurrency == 15


def test_progress_bar_on_a_tty_and_log_lines_otherwise(caplog):
    summary = RunSummary(planned=4, new=2, already=1)
    tty = io.StringIO()
    bar = Progress(4, tty, tty=True, width=8)
    bar.update(summary)
    bar.update(summary, final=True)
    assert tty.getvalue() == "\r[######--] 3/4  new 2  there 1  failed 0" * 2 + "\n"
    plain = io.StringIO()
    with caplog.at_level(logging.INFO, logger="warmline.precompute"):
        lines = Progress(4, plain, tty=False, every_s=3600)
        lines.update(summary)
        lines.update(summary)  # throttled
        lines.update(summary, final=True)
    assert plain.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == ["precompute progress 3/4 new=2 already=1 failed=0 chars=0"] * 2


def test_cli_run_dry_run_and_errors(pc_app, provider, tmp_path):
    runner = pc_app.test_cli_runner()
    dry = runner.invoke(args=["precompute", "run", "--fixed-only", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"planned {FIXED_DEMO_CLIPS} clips ({FIXED_DEMO_CLIPS} fixed, 0 mined)" in dry.output
    assert "dry run: nothing synthesized" in dry.output and provider.calls == []
    unknown = runner.invoke(args=["precompute", "run", "--business", "nope"])
    assert unknown.exit_code == 1 and "no business 'nope'" in unknown.output
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "turns": [  # a piece counts once per dialogue
        {"speaker": "user", "text": "hi"},
        {"speaker": "system", "text": "Happy to help. Anything else?" if i == 1 else "Anything else?"},
        {"speaker": "system", "text": "Anything else?"}]}) + "\n" for i in (1, 2, 3)))
    mined = runner.invoke(args=["precompute", "run", "--dry-run", "--from-corpus", str(corpus)])
    assert mined.exit_code == 0, mined.output
    assert f"planned {FIXED_DEMO_CLIPS + 1} clips ({FIXED_DEMO_CLIPS} fixed, 1 mined)" in mined.output
    assert "mined           3    14  anything else?" in mined.output
    real = runner.invoke(args=["precompute", "run", "--from-corpus", str(corpus), "--budget-chars", "0"])
    assert real.exit_code == 0, real.output
    assert f"planned {FIXED_DEMO_CLIPS}  new {FIXED_DEMO_CLIPS}  already there 0  failed 0" in real.output
    again = runner.invoke(args=["precompute", "run", "--from-corpus", str(corpus)])
    assert "planned 1  new 1  already there 0  failed 0" in again.output
    assert provider.calls[-1] == "anything else?"


def test_scheduler_uses_the_configured_cron_and_timezone(make_app, provider):
    app = make_app(runtime={"providers": {"piper": provider}}, precompute_cron="30 2 * * 1-5",
                   precompute_timezone="Australia/Sydney")
    rt = rt_of(app)
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = build_scheduler(rt, BackgroundScheduler(timezone="UTC"))
    (job,) = scheduler.get_jobs()
    assert job.id == "precompute" and job.max_instances == 1 and job.coalesce
    sydney = ZoneInfo("Australia/Sydney")
    friday_night = dt.datetime(2026, 11, 27, 3, 0, tzinfo=sydney)
    assert job.trigger.get_next_fire_time(None, friday_night) == dt.datetime(2026, 11, 30, 2, 30, tzinfo=sydney)
    with pytest.raises(ConfigError, match="WARMLINE_PRECOMPUTE_CRON"):
        trigger(make_app(precompute_cron="61 * * * *").extensions["warmline"].settings)
    with lock_for(rt):  # a held lock: the job logs and returns, nothing raised into the scheduler
        nightly_job(rt)
    assert provider.calls == []
    nightly_job(rt)
    assert len(provider.calls) == FIXED_DEMO_CLIPS


def test_events_are_shipped_to_the_events_bucket_and_mined_from_every_host(tmp_path):
    """Host A ships its log as byte-range chunks to a private GCS events bucket; host B's chunks are there
    too; mining reads this host's log plus B's chunks, each line once, and keeps only pieces heard in
    enough distinct calls."""
    from app.events_ship import Shipper
    from app.events_store import GCSEventsStore, raw_name
    from app.report.source import event_lines
    from tests.gcs_support import emulator_admin_client, running_emulator

    today = dt.date(2026, 11, 25)
    log = EventLog(tmp_path / "events")
    voice = Voice("piper", "en_US-joe-medium")

    def event(text: str, call: int) -> dict:
        return {"business": "demo", "voice": voice.slug, "call": f"CA{call:032x}",
                "sentences": [{"text": text, "hit": False}]}

    for day, n in ((23, 2), (24, 3), (25, 4)):
        for i in range(n):
            log.append(event("We open at 9 a.m.", day * 10 + i), when=dt.datetime(2026, 11, day, 9, tzinfo=dt.UTC))
    with running_emulator() as base_url:
        client = emulator_admin_client(base_url)
        client.create_bucket("warmline-events")
        store = GCSEventsStore(bucket="warmline-events", prefix="prod", client=client)
        clock = lambda: dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)  # noqa: E731
        shipper = Shipper(tmp_path / "events", store, "host-a", clock=clock)
        first = shipper.ship_once()
        assert [n.split("/")[2] for n in first.chunks] == ["2026-11-23", "2026-11-24", "2026-11-25"]
        assert [n.split("/")[1] for n in first.rollups] == ["host-a", "host-a"]  # the two closed days
        assert shipper.ship_once().chunks == ()  # once only
        assert store.get(first.chunks[1]) == log.path_for(dt.date(2026, 11, 24)).read_bytes()
        other = b"".join(json.dumps(event("Is there anything else?", i)).encode() + b"\n" for i in range(5))
        store.put_new(raw_name("host-b", dt.date(2026, 11, 24), 0, len(other)), other)
        store.put_new(raw_name("host-b", dt.date(2026, 11, 1), 0, len(other)), other)  # outside the window
        assert store.hosts() == ["host-a", "host-b"]
        lines = list(event_lines(events_dir=tmp_path / "events", store=store, this_host="host-a",
                                 since=dt.date(2026, 11, 19), until=today))
        mined = mine.mine_events(mine.parse_lines(lines))
        shipper.close()
    assert dict(mined.counts[voice.slug]) == {"we open at nine a.m.": 9, "is there anything else?": 5}
    assert mined.for_voice(voice.slug, min_calls=6) == {"we open at nine a.m.": 9}
    assert host_id("Web-01.Example.COM") == "web-01-example-com"


def test_a_phrase_business_gets_its_fixed_sentences_assembled_once(make_app, tmp_path):
    """At the phrase level a sentence plays as one clip assembled from its pieces: the nightly run makes it,
    so a live turn finds it in the index instead of uploading it inside a webhook."""
    from app.speech.keys import assembled_key
    from app.speech.pieces import join_pauses, split_pieces
    from precompute.plan import fixed_sentences

    toml = (ROOT / "businesses" / "businesses.toml").read_text()
    path = tmp_path / "businesses.toml"
    path.write_text(toml.replace('splice = "sentence"', 'splice = "phrase"'))
    app = make_app(runtime={"providers": {"piper": ToneProvider()}}, businesses=path)
    rt = rt_of(app)
    demo = rt.businesses.get("demo")
    hours = split_pieces(demo.hours, "phrase")  # one sentence: "We're open Monday to Friday from~", "~8 a.m.~", ...
    assert len(hours) == 8 and hours[1] == "~8 a.m.~"
    sentences = fixed_sentences(demo, rt.responder.fixed_texts(demo))
    assert tuple(hours) in sentences and all(len(s) >= 2 for s in sentences)

    first = precompute(rt, RunOptions(fixed_only=True))
    assert first.failed == 0 and first.assembled == len(sentences) > 0
    clips = [rt.synthesizer.lookup(p, demo.voice) for p in hours]
    key = assembled_key([c.key for c in clips], join_pauses(hours), demo.voice)
    assert rt.index.get(key) is not None  # the hours sentence, ready to play as one clip
    second = precompute(rt, RunOptions(fixed_only=True))
    assert second.assembled == 0 and "sentences assembled" not in "\n".join(second.lines())
    assert f"sentences assembled from their pieces {len(sentences)}" in first.lines()
