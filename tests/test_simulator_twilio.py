"""The Twilio-role simulator against hand-written TwiML served by a real HTTP server on loopback.

The server (Flask on werkzeug's threaded server) checks every webhook's X-Twilio-Signature with
twilio's RequestValidator (403 when wrong), records every request, and serves tiny mu-law WAVs.
Most calls run with ``speed=math.inf`` (no sleeping): simulated waits are exact, real HTTP
time is measured. Where a test needs exact numbers, the clock's real-time source is frozen so
HTTP costs nothing simulated.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from app.speech.wav import ulaw_wav, wav_duration_s
from simulator.clock import Clock
from simulator.timeline import Event, Timeline
from simulator.twilio_client import (
    APPLICATION_ERROR_TEXT,
    CallConfig,
    CallResult,
    Knobs,
    MediaCache,
    format_transcript,
    new_call_sid,
    run_call,
    say_duration_s,
)
from tests.support import free_port

TOKEN = "sim-test-token"
RATE = 8000
# Knobs with every simulated latency at zero: only what a test sets explicitly costs time.
ZERO = Knobs(
    network_rtt_ms=0,
    media_fetch_ms=0,
    media_cached_ms=0,
    caller_speaking_s=1.0,
    speech_endpoint_ms=0,
    webhook_timeout_s=5.0,
    media_timeout_s=5.0,
)


def wav(seconds: float, byte: int = 0xFF) -> bytes:
    """A mono 8 kHz mu-law WAV lasting exactly ``seconds`` (0xFF is mu-law silence)."""
    return ulaw_wav(bytes([byte]) * round(seconds * RATE), RATE)


@dataclass
class Seen:
    """One request the test server received."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    signature: str | None
    signature_ok: bool
    arrived: float


@dataclass
class TwimlServer:
    """A real HTTP server for the simulator to call; routes are set per test."""

    base_url: str = ""
    routes: dict[str, Callable[[], Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.routes.clear()
            self.seen.clear()
        self.routes["/voice/status/demo"] = lambda: Response(status=204)

    def twiml(
        self, path: str, body: str, content_type: str = "text/xml", status: int = 200, delay_s: float = 0.0
    ) -> None:
        def handler() -> Response:
            if delay_s:
                time.sleep(delay_s)
            return Response(body, status=status, content_type=content_type)

        self.routes[path] = handler

    def media(self, path: str, data: bytes, content_type: str = "audio/wav", **headers: str) -> str:
        self.routes[path] = lambda: Response(data, content_type=content_type, headers=headers)
        return self.url(path)

    def url(self, path: str) -> str:
        return self.base_url + path

    def requests_to(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]

    def wsgi(self) -> Flask:
        app = Flask("twiml-test-server")
        validator = RequestValidator(TOKEN)

        @app.route("/<path:path>", methods=["GET", "POST"])
        def any_route(path: str) -> Any:
            route = "/" + path
            signature = request.headers.get("X-Twilio-Signature")
            ok = signature is not None and validator.validate(request.url, request.form, signature)
            with self.lock:
                self.seen.append(
                    Seen(
                        request.method,
                        route,
                        dict(request.args),
                        dict(request.form),
                        signature,
                        ok,
                        time.perf_counter(),
                    )
                )
            if not route.startswith("/media/") and not ok:
                return Response("bad signature", status=403)
            handler = self.routes.get(route)
            if handler is None:
                return Response("not found", status=404, content_type="text/plain")
            return handler()

        return app


@pytest.fixture(scope="module")
def _server() -> Iterator[TwimlServer]:
    server = TwimlServer()
    port = free_port()
    http = make_server("127.0.0.1", port, server.wsgi(), threaded=True)
    server.base_url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(_server: TwimlServer) -> TwimlServer:
    _server.reset()
    return _server


def config(server: TwimlServer, **kwargs: Any) -> CallConfig:
    kwargs.setdefault("knobs", ZERO)
    kwargs.setdefault("speed", math.inf)
    return CallConfig(base_url=server.base_url, business_id="demo", auth_token=TOKEN, **kwargs)


def events(result: CallResult, kind: str) -> list[Event]:
    return [e for e in result.events if e.kind == kind]


def frozen_clock() -> Clock:
    """A clock on which real work (HTTP) costs no simulated time: every timing is exact."""
    return Clock(speed=math.inf, perf_counter=lambda: 0.0)


INCOMING = "/voice/incoming/demo"
CALL_FIELDS = {"CallSid", "AccountSid", "From", "To", "CallStatus", "Direction", "ApiVersion"}


# ---- clock ------------------------------------------------------------------------------------


def test_clock_scales_simulated_waits_only() -> None:
    slept: list[float] = []
    ticks = iter([10.0, 10.3])
    clock = Clock(speed=10.0, sleep=slept.append, perf_counter=lambda: next(ticks))
    clock.sleep(5.0)
    assert slept == [0.5]
    assert clock.now() == 5.0
    with clock.real() as watch:
        pass
    assert watch.elapsed_s == pytest.approx(0.3)
    assert clock.now() == pytest.approx(5.3)  # 300 ms of real HTTP time is 300 ms simulated, at any speed
    clock.advance(0.2)
    assert clock.now() == pytest.approx(5.5)


def test_clock_infinite_speed_never_sleeps_and_bad_speed_is_rejected() -> None:
    slept: list[float] = []
    clock = Clock(speed=math.inf, sleep=slept.append)
    clock.sleep(30.0)
    assert (slept, clock.now()) == ([], 30.0)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError):
            Clock(speed=bad)
    with pytest.raises(ValueError):
        clock.sleep(-0.1)


def test_clock_counts_real_time_even_when_the_block_raises() -> None:
    ticks = iter([1.0, 3.0])
    clock = Clock(speed=1.0, perf_counter=lambda: next(ticks))
    with pytest.raises(RuntimeError), clock.real():
        raise RuntimeError("timed out")
    assert clock.now() == 2.0


# ---- timeline metrics on hand-built events ------------------------------------------------------


def test_timeline_metrics_count_gaps_between_clips_and_pauses() -> None:
    tl = Timeline()
    tl.add(0.0, "webhook", 0.2, via="incoming")
    tl.add(0.2, "play", 1.0, url="greet", answer=True)
    tl.add(1.2, "speak", 1.5, text="hours?")
    # turn 1 starts at 2.7
    tl.add(2.7, "webhook", 0.3, via="gather")
    tl.add(3.0, "play", 1.0, url="filler", answer=False)
    tl.add(4.0, "webhook", 0.9, via="redirect")
    tl.add(4.9, "play", 1.2, url="s1", answer=True)
    tl.add(6.1, "pause", 0.4)
    tl.add(6.5, "say", 1.0, text="We open at nine.", answer=True)
    tl.add(7.5, "silence", 5.0, reason="no_input")
    tl.add(12.5, "hangup", reason="caller_hangup")
    greeting, turn = tl.turns()
    assert (greeting.time_to_first_audio_s, greeting.time_to_answer_audio_s) == (0.2, 0.2)
    assert greeting.longest_silence_s == 0.2
    assert turn.index == 1 and turn.utterance == "hours?" and turn.start_s == 2.7
    assert turn.time_to_first_audio_s == pytest.approx(0.3)
    assert turn.time_to_answer_audio_s == pytest.approx(2.2)
    assert turn.longest_silence_s == pytest.approx(0.9)  # the redirect hop between filler and answer
    assert turn.fillers == ("filler",)
    assert turn.heard == ("filler", "s1", "We open at nine.")
    assert turn.hops == 1
    assert turn.end_s == 7.5  # the response phase ends where the gather starts waiting


def test_timeline_turn_without_answer_runs_to_the_application_error() -> None:
    tl = Timeline()
    tl.add(0.0, "speak", 1.0, text="hi")
    tl.add(1.0, "webhook", 0.1, via="gather")
    tl.add(1.1, "play", 0.5, url="filler", answer=False)
    tl.add(1.6, "webhook", 2.0, via="redirect")
    tl.add(3.6, "say", 2.0, text=APPLICATION_ERROR_TEXT, answer=False, system=True)
    tl.add(5.6, "hangup", reason="application_error")
    _, turn = tl.turns()
    assert turn.time_to_answer_audio_s is None
    assert turn.time_to_first_audio_s == pytest.approx(0.1)
    assert turn.longest_silence_s == pytest.approx(2.0)  # from the filler's end to Twilio's apology
    assert turn.heard == ("filler",)


# ---- webhooks: fields, signatures, verbs -------------------------------------------------------


def test_incoming_say_hangup_sends_twilio_fields_signed_and_status_callback(server: TwimlServer) -> None:
    server.twiml(
        INCOMING,
        '<Response><Say voice="Polly.Joanna">Thanks for calling Warmline</Say><Hangup/><Say>never</Say></Response>',
    )
    cfg = config(server, call_sid="CA" + "ab" * 16)
    result = run_call(cfg, clock=frozen_clock())

    (incoming,) = server.requests_to(INCOMING)
    assert incoming.method == "POST" and incoming.signature_ok
    assert incoming.form == {
        "CallSid": "CA" + "ab" * 16,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15551230000",
        "To": "+15005550006",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    (status,) = server.requests_to("/voice/status/demo")
    assert status.signature_ok
    assert status.form["CallStatus"] == "completed"
    assert status.form["CallDuration"] == "2"  # 4 words / 2.7 = 1.48 s, rounded up

    (say,) = events(result, "say")
    assert say.detail["text"] == "Thanks for calling Warmline" and say.detail["voice"] == "Polly.Joanna"
    assert say.duration_s == pytest.approx(4 / 2.7)
    assert result.ended_by == "hangup"
    assert result.duration_s == pytest.approx(4 / 2.7)
    assert result.failures == []
    assert result.audio_segments == [(0.0, "say", "Thanks for calling Warmline")]


def test_say_duration_has_a_floor() -> None:
    assert say_duration_s("Hi.") == 0.5
    assert say_duration_s("one two three four five six seven eight nine ten") == pytest.approx(10 / 2.7)
    assert new_call_sid().startswith("CA") and len(new_call_sid()) == 34


def test_play_fetches_without_params_or_signature_and_lasts_the_wav(server: TwimlServer) -> None:
    clip = wav(0.75)
    server.media("/media/one.wav", clip)
    server.twiml(INCOMING, '<Response><Play loop="2">../../media/one.wav</Play><Pause length="2"/></Response>')
    result = run_call(config(server), clock=frozen_clock())

    (get,) = server.requests_to("/media/one.wav")  # relative URL resolved against the document URL
    assert (get.method, get.query, get.form, get.signature) == ("GET", {}, {}, None)
    (play,) = events(result, "play")
    assert play.t == 0.0 and play.duration_s == 1.5 and play.detail["loop"] == 2
    assert play.detail["answer"] is True  # no <Redirect> follows it
    (pause,) = events(result, "pause")
    assert (pause.t, pause.duration_s) == (1.5, 2.0)
    assert result.audio_segments == [(0.0, "play", clip), (0.75, "play", clip)]
    assert result.ended_by == "end_of_document"
    assert result.duration_s == 3.5


def test_endless_loop_plays_until_the_caller_gives_up(server: TwimlServer) -> None:
    server.media("/media/hold.wav", wav(2.0))
    server.twiml(INCOMING, '<Response><Play loop="0">/media/hold.wav</Play><Say>unreached</Say></Response>')
    knobs = replace(ZERO, caller_patience_s=5.0)
    result = run_call(config(server, knobs=knobs), clock=frozen_clock())
    assert result.ended_by == "caller_hangup"
    assert [e.duration_s for e in events(result, "play")] == [5.0]
    assert [s.start_s for s in result.audio_segments] == [0.0, 2.0, 4.0]
    assert events(result, "say") == []


def test_relative_redirect_posts_signed_and_ignores_later_verbs(server: TwimlServer) -> None:
    server.twiml(INCOMING, "<Response><Redirect>step2?turn=1</Redirect><Say>ignored</Say></Response>")
    server.twiml("/voice/incoming/step2", "<Response><Say>Second document.</Say></Response>")
    result = run_call(config(server), clock=frozen_clock())

    (hop,) = server.requests_to("/voice/incoming/step2")
    assert hop.method == "POST" and hop.signature_ok
    assert hop.query == {"turn": "1"}
    assert set(hop.form) == CALL_FIELDS and hop.form["CallStatus"] == "in-progress"
    assert [e.detail["text"] for e in events(result, "say")] == ["Second document."]
    webhooks = events(result, "webhook")
    assert [w.detail["via"] for w in webhooks] == ["incoming", "redirect", "status"]
    assert webhooks[1].detail["url"] == server.url("/voice/incoming/step2?turn=1")


def test_redirect_method_get_sends_params_in_the_query_and_signs_the_full_url(server: TwimlServer) -> None:
    server.twiml(INCOMING, '<Response><Redirect method="GET">/ready?turn=2</Redirect></Response>')
    server.twiml("/ready", "<Response><Hangup/></Response>")
    cfg = config(server)
    result = run_call(cfg, clock=frozen_clock())

    (hop,) = server.requests_to("/ready")
    assert hop.method == "GET" and hop.signature_ok and hop.form == {}
    assert hop.query["turn"] == "2" and hop.query["CallSid"] == cfg.call_sid
    assert set(hop.query) == CALL_FIELDS | {"turn"}
    assert result.ended_by == "hangup" and result.failures == []


def test_gather_posts_speech_to_its_action_and_default_action_is_the_document(server: TwimlServer) -> None:
    server.twiml(
        INCOMING,
        '<Response><Gather input="speech" action="/process?n=1"><Say>How can I help?</Say></Gather></Response>',
    )
    server.twiml("/process", '<Response><Say>Sure.</Say><Gather input="speech" method="POST"/></Response>')
    knobs = replace(ZERO, caller_speaking_s=1.25, speech_endpoint_ms=300, confidence=0.87)
    result = run_call(config(server, knobs=knobs, script=["What are your hours?", "Thanks"]), clock=frozen_clock())

    first, second = server.requests_to("/process")
    # the second Gather has no action: Twilio posts to the URL of its own document, query included
    assert first.query == second.query == {"n": "1"}
    gathers = [e for e in events(result, "webhook") if e.detail["via"] == "gather"]
    assert [g.detail["url"] for g in gathers] == [server.url("/process?n=1")] * 2
    assert first.signature_ok and second.signature_ok
    assert first.form["SpeechResult"] == "What are your hours?" and first.form["Confidence"] == "0.87"
    assert second.form["SpeechResult"] == "Thanks"
    assert set(first.form) == CALL_FIELDS | {"SpeechResult", "Confidence"}
    speaks = events(result, "speak")
    assert [(s.detail["text"], s.duration_s) for s in speaks] == [("What are your hours?", 1.25), ("Thanks", 1.25)]
    # caller stops at 1.25 + say(4 words); the endpointing delay is the only time before the webhook
    assert result.turns[0].time_to_first_audio_s == pytest.approx(0.3)
    assert result.turns[0].utterance == "What are your hours?"


def test_all_plays_in_a_gather_are_fetched_before_the_first_plays(server: TwimlServer) -> None:
    server.media("/media/a.wav", wav(1.0))
    server.media("/media/b.wav", wav(0.5))
    server.twiml(
        INCOMING,
        '<Response><Gather input="speech"><Play>/media/a.wav</Play><Pause length="1"/>'
        "<Play>/media/b.wav</Play><Play>/media/a.wav</Play></Gather><Hangup/></Response>",
    )
    knobs = replace(ZERO, media_fetch_ms=200, media_cached_ms=10)
    result = run_call(config(server, knobs=knobs), clock=frozen_clock())

    fetches = events(result, "fetch")
    assert [(f.detail["url"].rsplit("/", 1)[1], f.detail["cached"]) for f in fetches] == [
        ("a.wav", False),
        ("b.wav", False),
        ("a.wav", True),
    ]
    assert [f.t for f in fetches] == pytest.approx([0.0, 0.2, 0.4])
    plays = events(result, "play")
    assert fetches[-1].end <= plays[0].t
    assert [p.t for p in plays] == pytest.approx([0.41, 2.41, 2.91])  # a, pause 1 s, b, a
    # the server saw both GETs before anything played, and a.wav only once (Twilio's cache)
    assert [s.path for s in server.seen if s.path.startswith("/media/")] == ["/media/a.wav", "/media/b.wav"]


def test_media_cache_is_shared_between_calls_unless_no_store(server: TwimlServer) -> None:
    server.media("/media/cached.wav", wav(0.5))
    server.media("/media/fresh.wav", wav(0.5), **{"Cache-Control": "no-store"})
    server.twiml(INCOMING, "<Response><Play>/media/cached.wav</Play><Play>/media/fresh.wav</Play></Response>")
    cache = MediaCache()
    knobs = replace(ZERO, media_fetch_ms=150, media_cached_ms=20)
    run_call(config(server, knobs=knobs, media_cache=cache), clock=frozen_clock())
    second = run_call(config(server, knobs=knobs, media_cache=cache), clock=frozen_clock())

    assert len(server.requests_to("/media/cached.wav")) == 1
    assert len(server.requests_to("/media/fresh.wav")) == 2
    cached, fresh = events(second, "fetch")
    assert (cached.detail["cached"], cached.duration_s) == (True, 0.02)
    assert fresh.detail["cached"] is False and fresh.duration_s == pytest.approx(0.15)
    assert server.url("/media/cached.wav") in cache and len(cache) == 1


def test_unanswered_gathers_post_empty_result_then_the_caller_hangs_up(server: TwimlServer) -> None:
    server.twiml(
        INCOMING, '<Response><Gather input="speech" timeout="3" actionOnEmptyResult="true" action="/empty"/></Response>'
    )
    server.twiml(
        "/empty",
        '<Response><Say>Are you still there?</Say><Gather input="speech" timeout="4"/><Say>Bye</Say></Response>',
    )
    result = run_call(config(server), clock=frozen_clock())

    (empty,) = server.requests_to("/empty")
    assert empty.form["SpeechResult"] == "" and "Confidence" not in empty.form
    assert [e.duration_s for e in events(result, "silence")] == [3.0, 4.0]
    assert result.ended_by == "caller_hangup"
    assert [e.detail["text"] for e in events(result, "say")] == ["Are you still there?"]  # hung up before "Bye"
    assert result.duration_s == pytest.approx(3.0 + 4 / 2.7 + 4.0)


def test_unanswered_gather_without_action_on_empty_falls_through(server: TwimlServer) -> None:
    server.twiml(INCOMING, '<Response><Gather input="speech" action="/never"/><Say>Goodbye</Say></Response>')
    result = run_call(config(server), clock=frozen_clock())
    assert server.requests_to("/never") == []
    (say,) = events(result, "say")
    assert say.t == 5.0  # Twilio's default gather timeout
    assert result.ended_by == "end_of_document"


def test_gather_without_speech_input_does_not_hear_the_caller(server: TwimlServer) -> None:
    server.twiml(INCOMING, '<Response><Gather action="/never"/></Response>')
    result = run_call(config(server, script=["hello?"]), clock=frozen_clock())
    assert server.requests_to("/never") == []
    (failure,) = result.failures
    assert failure.where == "twiml" and not failure.fatal and "does not listen to speech" in failure.message


def test_dial_transfers_and_unsupported_verbs_end_the_call(server: TwimlServer) -> None:
    server.twiml(INCOMING, "<Response><Dial>+15550001111</Dial></Response>")
    result = run_call(config(server), clock=frozen_clock())
    assert result.ended_by == "transferred" and events(result, "dial")[0].detail["number"] == "+15550001111"

    server.twiml(INCOMING, "<Response><Record/></Response>")
    result = run_call(config(server), clock=frozen_clock())
    assert result.ended_by == "unsupported"
    assert [(f.code, f.where, f.fatal) for f in result.failures] == [(None, "simulator", True)]


# ---- media failures: Twilio skips the verb and the call goes on -------------------------------------


@pytest.mark.parametrize(
    ("twiml", "code"),
    [
        ("<Response><Play>/media/page.html</Play><Say>still here</Say></Response>", 13420),
        (
            '<Response><Gather input="speech"><Play>/media/page.html</Play><Say>still here</Say></Gather></Response>',
            13325,
        ),
        ("<Response><Play>/media/missing.wav</Play><Say>still here</Say></Response>", 11200),
    ],
    ids=["bad-content-type", "bad-content-type-in-gather", "404"],
)
def test_media_failures_skip_the_play(server: TwimlServer, twiml: str, code: int) -> None:
    server.media("/media/page.html", b"<html>hi</html>", content_type="text/html")
    server.twiml(INCOMING, twiml)
    result = run_call(config(server), clock=frozen_clock())
    (failure,) = result.failures
    assert (failure.code, failure.where, failure.fatal) == (code, "media", False)
    assert events(result, "play") == []
    assert [e.detail["text"] for e in events(result, "say")] == ["still here"]
    assert result.ended_by in {"end_of_document", "caller_hangup"}


def test_media_that_is_not_mulaw_wav_is_reported(server: TwimlServer) -> None:
    server.media("/media/garbage.wav", b"RIFF....WAVEjunk")
    server.twiml(INCOMING, "<Response><Play>/media/garbage.wav</Play></Response>")
    result = run_call(config(server), clock=frozen_clock())
    (failure,) = result.failures
    assert failure.code is None and failure.where == "media" and "mu-law WAV" in failure.message


# ---- webhook failures: Twilio's application error ----------------------------------------------


def assert_application_error(result: CallResult, code: int, server: TwimlServer) -> None:
    fatal = [f for f in result.failures if f.fatal]
    assert [(f.code, f.where in {"webhook", "twiml"}) for f in fatal] == [(code, True)]
    assert result.ended_by == "application_error"
    (apology,) = events(result, "say")
    assert apology.detail["system"] is True and apology.detail["text"] == APPLICATION_ERROR_TEXT
    assert len(server.requests_to("/voice/status/demo")) == 1  # Twilio still reports the call as completed


def test_webhook_slower_than_the_limit_is_an_application_error(server: TwimlServer) -> None:
    server.twiml(INCOMING, "<Response><Say>too late</Say></Response>", delay_s=0.8)
    knobs = replace(ZERO, webhook_timeout_s=0.25)
    started = time.perf_counter()
    result = run_call(config(server, knobs=knobs))
    assert time.perf_counter() - started < 0.75  # gave up at the limit, did not wait for the server
    assert_application_error(result, 11200, server)
    assert "no response within 0.25 s" in result.failures[0].message
    (hook,) = [e for e in events(result, "webhook") if e.detail["via"] == "incoming"]
    assert hook.detail["status"] is None and hook.duration_s == pytest.approx(0.25, abs=0.1)
    time.sleep(0.6)  # let the slow handler finish before the next test reuses the server


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("<Response><Say>unclosed</Response>", "text/xml", 200, 12100),
        ("", "text/xml", 200, 12100),
        ("<Response><Say>hi</Say></Response>", "text/html", 200, 12300),
        ("<Response><Say>hi</Say></Response>", "text/xml", 500, 11200),
        ("<Html><Say>hi</Say></Html>", "application/xml", 200, 12200),
        ("<Response><Speak>hi</Speak></Response>", "text/xml", 200, 12200),
        (
            '<Response><Say>before</Say><Gather input="speech"><Redirect>/x</Redirect></Gather></Response>',
            "text/xml",
            200,
            12200,
        ),
    ],
    ids=[
        "invalid-xml",
        "empty-body",
        "wrong-content-type",
        "http-500",
        "root-not-response",
        "unknown-verb",
        "redirect-in-gather",
    ],
)
def test_bad_twiml_responses_are_application_errors(
    server: TwimlServer, body: str, content_type: str, status: int, code: int
) -> None:
    server.twiml(INCOMING, body, content_type=content_type, status=status)
    result = run_call(config(server), clock=frozen_clock())
    assert_application_error(result, code, server)
    assert result.greeting.heard == ()  # nothing of the bad document ran, not even the <Say> before the Gather


def test_application_error_on_a_gather_action_ends_the_call_mid_turn(server: TwimlServer) -> None:
    server.twiml(INCOMING, '<Response><Gather input="speech" action="/process"/></Response>')
    server.twiml("/process", "<Response><Say>x</Say>", content_type="text/xml")
    result = run_call(config(server, script=["hello", "unused"]), clock=frozen_clock())
    assert_application_error(result, 12100, server)
    (turn,) = result.turns
    assert turn.time_to_first_audio_s is None and [f.code for f in turn.failures] == [12100]


def test_wrong_auth_token_is_rejected_by_the_server(server: TwimlServer) -> None:
    server.twiml(INCOMING, "<Response><Say>hi</Say></Response>")
    cfg = CallConfig(
        base_url=server.base_url, business_id="demo", auth_token="not-the-token", knobs=ZERO, speed=math.inf
    )
    result = run_call(cfg)
    (incoming,) = server.requests_to(INCOMING)
    assert incoming.signature is not None and not incoming.signature_ok
    assert_application_error(result, 11200, server)
    assert "HTTP 403" in result.failures[0].message
    assert result.failures[-1].where == "status_callback"  # the status callback is refused too


def test_connection_refused_is_an_application_error() -> None:
    cfg = CallConfig(
        base_url=f"http://127.0.0.1:{free_port()}", business_id="demo", auth_token=TOKEN, knobs=ZERO, speed=math.inf
    )
    result = run_call(cfg)
    assert result.ended_by == "application_error"
    assert [(f.code, f.where, f.fatal) for f in result.failures] == [
        (11205, "webhook", True),
        (11205, "status_callback", False),
    ]


# ---- metrics of a scripted filler -> redirect -> answer turn --------------------------------------


def filler_flow(server: TwimlServer) -> dict[str, str]:
    urls = {
        "greet": server.media("/media/greet.wav", wav(1.5)),
        "filler": server.media("/media/filler.wav", wav(1.0)),
        "answer": server.media("/media/answer.wav", wav(2.0)),
    }
    server.twiml(
        INCOMING, '<Response><Gather input="speech" action="/process"><Play>/media/greet.wav</Play></Gather></Response>'
    )
    server.twiml("/process", "<Response><Play>/media/filler.wav</Play><Redirect>/ready</Redirect></Response>")
    server.twiml(
        "/ready", '<Response><Play>/media/answer.wav</Play><Gather input="speech" action="/process"/></Response>'
    )
    return urls


KNOBS = Knobs(
    network_rtt_ms=100,
    media_fetch_ms=200,
    media_cached_ms=10,
    caller_speaking_s=1.5,
    speech_endpoint_ms=0,
    webhook_timeout_s=5.0,
    max_unanswered_gathers=1,
)


def test_metrics_are_exact_when_http_costs_nothing(server: TwimlServer) -> None:
    urls = filler_flow(server)
    result = run_call(config(server, knobs=KNOBS, script=["What are your hours?"]), clock=frozen_clock())

    greeting = result.greeting
    assert greeting.time_to_first_audio_s == pytest.approx(0.1 + 0.2)  # RTT + first media fetch
    assert greeting.longest_silence_s == pytest.approx(0.3)
    (turn,) = result.turns
    assert turn.start_s == pytest.approx(0.3 + 1.5 + 1.5)  # greeting ends at 1.8, caller speaks 1.5 s
    assert turn.time_to_first_audio_s == pytest.approx(0.3)  # RTT + filler fetch
    assert turn.time_to_answer_audio_s == pytest.approx(0.3 + 1.0 + 0.1 + 0.2)  # + filler + hop RTT + answer fetch
    assert turn.longest_silence_s == pytest.approx(0.3)
    assert turn.fillers == (urls["filler"],) and turn.hops == 1 and turn.failures == ()
    assert turn.heard == (urls["filler"], urls["answer"])
    assert result.ended_by == "caller_hangup"
    assert result.duration_s == pytest.approx(3.3 + 1.6 + 2.0 + 5.0)


def test_a_ready_prefix_is_answer_audio_and_a_bridge_after_it_is_not(server: TwimlServer) -> None:
    """The one answer rule: a <Redirect> that moves ``played`` forward follows answer audio; one that keeps it, filler."""
    for name, seconds in (("greet", 1.5), ("filler", 1.0), ("prefix", 2.0), ("bridge", 0.8), ("rest", 1.2)):
        server.media(f"/media/{name}.wav", wav(seconds))
    server.twiml(
        INCOMING, '<Response><Gather input="speech" action="/process"><Play>/media/greet.wav</Play></Gather></Response>'
    )
    server.twiml("/process", "<Response><Play>/media/filler.wav</Play>"
                 "<Redirect>/ready1?turn=1&amp;played=0</Redirect></Response>")
    server.twiml("/ready1", "<Response><Play>/media/prefix.wav</Play>"
                 "<Redirect>/ready2?turn=1&amp;played=1</Redirect></Response>")
    server.twiml("/ready2", "<Response><Play>/media/bridge.wav</Play>"
                 "<Redirect>/ready3?turn=1&amp;played=1</Redirect></Response>")
    server.twiml("/ready3", '<Response><Play>/media/rest.wav</Play><Gather input="speech" action="/process"/></Response>')

    result = run_call(config(server, knobs=KNOBS, script=["What are your hours?"]), clock=frozen_clock())

    (turn,) = result.turns
    plays = {e.detail["url"].rsplit("/", 1)[1]: e.detail["answer"] for e in events(result, "play")}
    assert plays == {"greet.wav": True, "filler.wav": False, "prefix.wav": True, "bridge.wav": False, "rest.wav": True}
    assert turn.time_to_first_audio_s == pytest.approx(0.3)  # RTT + filler fetch
    assert turn.time_to_answer_audio_s == pytest.approx(0.3 + 1.0 + 0.1 + 0.2)  # the prefix starts the answer
    assert turn.fillers == (server.url("/media/filler.wav"),) and turn.hops == 3
    assert [label.rsplit("/", 1)[1] for _kind, label in turn.answer_audio] == ["prefix.wav", "rest.wav"]


def test_metrics_with_real_http_and_an_accelerated_clock(server: TwimlServer) -> None:
    filler_flow(server)
    started = time.perf_counter()
    result = run_call(config(server, knobs=KNOBS, script=["What are your hours?"], speed=20.0))
    wall = time.perf_counter() - started
    assert result.duration_s > 11.0 and wall < result.duration_s / 5  # simulated waits ran 20x faster

    hooks = {e.detail["via"]: e for e in events(result, "webhook")}
    fetches = {e.detail["url"].rsplit("/", 1)[1]: e for e in events(result, "fetch")}
    (turn,) = result.turns
    process, ready = hooks["gather"], hooks["redirect"]
    # every webhook costs exactly RTT + its measured server time; every first fetch 200 ms + its HTTP time
    for hook in (process, ready):
        assert hook.duration_s == pytest.approx(0.1 + hook.detail["server_s"], abs=1e-9)
    expected_first = process.duration_s + fetches["filler.wav"].duration_s
    assert turn.time_to_first_audio_s == pytest.approx(expected_first, abs=1e-9)
    assert turn.time_to_first_audio_s == pytest.approx(0.3, abs=0.15)
    expected_answer = expected_first + 1.0 + ready.duration_s + fetches["answer.wav"].duration_s
    assert turn.time_to_answer_audio_s == pytest.approx(expected_answer, abs=1e-9)
    assert turn.time_to_answer_audio_s == pytest.approx(1.6, abs=0.3)
    assert turn.longest_silence_s == pytest.approx(
        max(expected_first, expected_answer - expected_first - 1.0), abs=1e-9
    )


def test_transcript_and_to_dict(server: TwimlServer) -> None:
    filler_flow(server)
    result = run_call(config(server, knobs=KNOBS, script=["What are your hours?"]), clock=frozen_clock())
    assert [(line.who, line.kind, line.text.rsplit("/", 1)[-1]) for line in result.transcript] == [
        ("twilio", "play", "greet.wav"),
        ("caller", "speak", "What are your hours?"),
        ("twilio", "play", "filler.wav"),
        ("twilio", "play", "answer.wav"),
    ]
    assert [(s.kind, wav_duration_s(s.data)) for s in result.audio_segments] == [
        ("play", 1.5),
        ("play", 1.0),
        ("play", 2.0),
    ]
    text = format_transcript(result)
    assert "CALLER  'What are your hours?'" in text
    assert "PLAY [filler] " + server.url("/media/filler.wav") in text
    assert "turn 1 'What are your hours?': first audio 300 ms, answer 1600 ms" in text
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["ended_by"] == "caller_hangup" and data["call_sid"] == result.call_sid
    assert data["turns"][0]["hops"] == 1 and data["greeting"]["index"] == 0
    assert [s["bytes"] for s in data["audio_segments"]] == [len(s.data) for s in result.audio_segments]


def test_shared_httpx_client_is_left_open(server: TwimlServer) -> None:
    server.twiml(INCOMING, "<Response><Hangup/></Response>")
    with httpx.Client(trust_env=False) as client:
        first = run_call(config(server), client=client)
        second = run_call(config(server), client=client)
        assert not client.is_closed
    assert first.call_sid != second.call_sid
    assert [s.form["CallSid"] for s in server.requests_to(INCOMING)] == [first.call_sid, second.call_sid]


def test_a_failed_webhook_goes_to_the_fallback_url_with_error_code_and_url(server: TwimlServer) -> None:
    server.twiml(INCOMING, '<Response><Gather input="speech" action="/process"/></Response>')
    server.twiml("/process", "<Response><Say>x</Say></Response>", status=500)
    server.twiml("/voice/fallback/demo", "<Response><Say>Sorry, say that again?</Say><Hangup/></Response>")
    result = run_call(config(server, script=["hello"], fallback_url="/voice/fallback/demo"), clock=frozen_clock())
    (fallback,) = server.requests_to("/voice/fallback/demo")
    assert fallback.signature_ok and fallback.method == "POST"
    assert (fallback.form["ErrorCode"], fallback.form["ErrorUrl"]) == ("11200", server.url("/process"))
    assert fallback.form["CallSid"] == result.call_sid
    assert result.ended_by == "hangup"
    assert [f.fatal for f in result.failures] == [False]  # recovered: not an application error
    assert [x for x in result.turns[0].heard] == ["Sorry, say that again?"]


def test_a_failing_fallback_url_is_the_application_error(server: TwimlServer) -> None:
    server.twiml(INCOMING, "<Response><Say>x</Say></Response>", status=500)
    server.twiml("/voice/fallback/demo", "<Response><Say>x</Say></Response>", status=503)
    result = run_call(config(server, fallback_url="/voice/fallback/demo"), clock=frozen_clock())
    assert result.ended_by == "application_error"
    assert [(f.code, f.fatal) for f in result.failures] == [(11200, False), (11200, True)]


class _DropFirstStatusCallback(httpx.BaseTransport):
    """A real transport that fails the first status-callback connection, as a dying worker would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/voice/status/") and not self.dropped:
            self.dropped += 1
            raise httpx.ConnectError("connection reset", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("retries, lost", [(0, True), (2, False)])
def test_status_callback_connection_override_retries(server: TwimlServer, retries: int, lost: bool) -> None:
    server.twiml(INCOMING, "<Response><Hangup/></Response>")
    with httpx.Client(transport=_DropFirstStatusCallback()) as client:
        result = run_call(config(server, knobs=replace(ZERO, status_callback_retries=retries)), clock=frozen_clock(),
                          client=client)
    assert len(server.requests_to("/voice/status/demo")) == (0 if lost else 1)
    assert [f.where for f in result.failures] == (["status_callback"] if lost else [])
