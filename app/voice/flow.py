"""The call flow: what each webhook answers. Flask-free; views parse requests and call these.

Every function returns a TwiML string and never raises for a failure behind it (state, store,
synthesis, responder): those become a filler, a <Say> or an apology. Timings are measured from
``t0`` (``time.time()`` when the webhook arrived).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from app.business import Business
from app.errors import InvalidText, StateError, WarmlineError
from app.voice import twiml
from app.voice.arms import CONTROL
from app.voice.listening import listen_options
from app.voice.pacing import Pacing
from app.voice.turns import FAILED, TERMINAL, TurnEngine, is_complete, ready_prefix, reply_pieces

log = logging.getLogger("warmline.flow")


@dataclass(frozen=True)
class Urls:
    """Where this call's webhooks live; ``base`` is the public origin, ``clip()`` makes clip URLs absolute."""

    base: str
    business_id: str
    call_sid: str

    def process(self) -> str:
        return f"{self.base}/voice/process/{self.business_id}/{self.call_sid}"

    def partial(self) -> str:
        return f"{self.base}/voice/partial/{self.business_id}/{self.call_sid}"

    def ready(self, turn: int, played: int) -> str:
        return f"{self.base}/voice/tts-ready/{self.business_id}/{self.call_sid}?" + urlencode({"turn": turn, "played": played})

    def clip(self, url: str) -> str:
        return self.base + url if url.startswith("/") else url


class CallFlow:
    """Answers the voice webhooks of one process. Thread-safe."""

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime
        self.engine = TurnEngine(runtime)
        self.pacing = Pacing()

    # --- small helpers -------------------------------------------------------------------------
    def say_voice(self, business: Business) -> twiml.SayVoice:
        return twiml.SayVoice(business.say_voice, business.language)

    def fixed(self, business: Business, text: str, urls: Urls) -> twiml.Speak:
        """A fixed phrase (greeting, filler, prompt): its precomputed clip, else <Say> now and synthesize for next time."""
        try:
            clip = self.rt.synthesizer.lookup(text, business.voice)
        except InvalidText:
            clip = None
        if clip is not None:
            return twiml.Speak(url=urls.clip(clip.url), text=text)
        self._synthesize_later(business, text)
        return twiml.Speak(text=text)

    def _synthesize_later(self, business: Business, text: str) -> None:
        def job() -> None:
            try:
                self.rt.synthesizer.clip(text, business.voice)
            except WarmlineError as exc:
                log.warning("background synthesis of a fixed phrase failed: %s", exc)

        self.rt.pool.submit(job)

    def listen(self, business: Business, urls: Urls) -> twiml.Listen:
        return twiml.Listen(
            action=urls.process(), language=business.language,
            still_there=self.fixed(business, business.prompt("still_there"), urls),
            goodbye=self.fixed(business, business.prompt("goodbye"), urls),
            **listen_options(business, urls, self.rt.state),
        )

    def finish(self, business: Business, items: list[twiml.Speak], action: str, urls: Urls) -> str:
        say = self.say_voice(business)
        if action == "end":
            return twiml.speak_then_hangup(items, say)
        if action == "transfer" and business.transfer_number:
            return twiml.speak_then_dial(items, business.transfer_number, say)
        return twiml.speak_then_listen(items, self.listen(business, urls), say)

    def apology(self, business: Business) -> str:
        """The last resort: an apology in the native voice, then hang up (always valid TwiML)."""
        return twiml.speak_then_hangup([twiml.Speak(text=business.prompt("apology"))], self.say_voice(business))

    # --- webhooks -------------------------------------------------------------------------------
    def incoming(self, business: Business, urls: Urls) -> str:
        try:
            self.engine.ensure_call(business, urls.call_sid)
        except StateError as exc:
            log.warning("call state unavailable at greeting: %s", exc)
        greeting = self.fixed(business, business.greeting, urls)
        return twiml.speak_then_listen([greeting], self.listen(business, urls), self.say_voice(business))

    def fallback(self, business: Business, urls: Urls, error_url: str, error_code: str) -> str:
        """Twilio could not get TwiML from ``error_url`` (its worker died, it timed out): pick the call up again.

        A failed ``tts-ready`` hop is answered as that hop (any worker can serve a turn); a failed
        ``process`` resumes its turn if the turn had started, else asks the caller to say it again;
        anything else starts over with the greeting.
        """
        log.warning("Twilio fallback for %s after error %s at %s", urls.call_sid, error_code or "?", error_url[:200])
        parts = urlsplit(error_url)
        kind = parts.path.strip("/").split("/")[1:2]
        if kind == ["tts-ready"]:
            query = parse_qs(parts.query)
            try:
                turn, played = int(query["turn"][0]), int(query.get("played", ["0"])[0])
            except (KeyError, ValueError):
                turn, played = 0, 0
            if 1 <= turn <= 10_000 and 0 <= played <= 1000:
                return self.ready(business, urls, turn, played)
        if kind in (["tts-ready"], ["process"]):
            call = self.rt.state.get_call(urls.call_sid) or {}
            turn = int(call.get("turn") or 0)
            record = self.rt.state.get_turn(urls.call_sid, turn) if turn else None
            if record is not None and not record.get("logged"):
                return self.ready(business, urls, turn, 0)
            reprompt = self.fixed(business, business.prompt("reprompt"), urls)
            return twiml.speak_then_listen([reprompt], self.listen(business, urls), self.say_voice(business))
        return self.incoming(business, urls)

    def status(self, call_sid: str) -> None:
        self.rt.state.delete_call(call_sid)

    def process(self, business: Business, urls: Urls, speech: str, t0: float) -> str:
        call = self.engine.ensure_call(business, urls.call_sid)
        if not speech:
            self._log_event(business, urls, call.get("arm", "warmline"), {"outcome": "reprompt", "action": "continue"}, t0)
            reprompt = self.fixed(business, business.prompt("reprompt"), urls)
            return twiml.speak_then_listen([reprompt], self.listen(business, urls), self.say_voice(business))
        if call.get("arm") == CONTROL:
            return self.control(business, urls, speech, t0)
        turn = self.engine.begin(business, urls.call_sid, speech, t0=t0)
        budget_ms = business.instant_budget_ms if business.instant_budget_ms is not None else self.rt.settings.instant_budget_ms
        budget_s = self.pacing.instant_budget_s(business.id, budget_ms / 1000)
        record = self.rt.state.wait_turn(urls.call_sid, turn, lambda r: bool(r) and r.get("status") in TERMINAL,
                                         timeout_s=budget_s)
        if is_complete(record):
            return self._answer(business, urls, turn, record, played=0, t0=t0, outcome="instant")
        filler_text = self.engine.next_filler(business, urls.call_sid)
        filler = self.fixed(business, filler_text, urls)
        elapsed = (time.time() - t0) * 1000
        self.engine.update(urls.call_sid, turn, lambda r: {**r, "filler": filler_text, "first_audio_ms": elapsed,
                                                           "filler_ms": elapsed})
        return twiml.speak_then_redirect([filler], urls.ready(turn, 0), self.say_voice(business))

    def ready(self, business: Business, urls: Urls, turn: int, played: int) -> str:
        record = self.rt.state.get_turn(urls.call_sid, turn)
        if record is None:
            # State lost (expired, or a Redis restart): ask again rather than fail.
            reprompt = self.fixed(business, business.prompt("reprompt"), urls)
            return twiml.speak_then_listen([reprompt], self.listen(business, urls), self.say_voice(business))
        t0 = record["started"]
        deadline = t0 + self.rt.settings.turn_deadline_s
        # Right after the first filler the caller is in silence while we wait: wait only the silence
        # budget before bridging with the second filler. After that, or mid-answer, wait a full hop.
        settings = self.rt.settings
        wait_s = min(settings.hop_s, settings.silence_budget_s) if played == 0 and not record.get("bridged") else settings.hop_s
        record = self._wait_for_progress(business, urls, turn, played, record, until=min(time.time() + wait_s, deadline))
        ready = ready_prefix(record)
        self.engine.update(urls.call_sid, turn, lambda r: {**r, "hops": r.get("hops", 0) + 1})
        if is_complete(record) or (record.get("pieces") and len(ready) == len(record["pieces"])):
            return self._answer(business, urls, turn, record, played=played, t0=t0, outcome="filler")
        if len(ready) > played:
            self._mark_answer_started(urls, turn, t0)
            items = self._items(ready[played:], urls)
            return twiml.speak_then_redirect(items, urls.ready(turn, len(ready)), self.say_voice(business))
        if time.time() >= deadline or record.get("status") == FAILED:
            return self._fallback(business, urls, turn, record, played, t0)
        self.engine.update(urls.call_sid, turn, lambda r: {**r, "bridged": True})
        second = self.fixed(business, business.prompt("second_filler"), urls)
        return twiml.speak_then_redirect([second], urls.ready(turn, played), self.say_voice(business))

    def _wait_for_progress(self, business: Business, urls: Urls, turn: int, played: int, record: dict[str, Any],
                           *, until: float) -> dict[str, Any]:
        """Wait until more of the turn is playable or ``until`` (epoch s); take the turn over if its owner dies."""
        progressed = lambda r: bool(r) and (r.get("status") in TERMINAL or len(ready_prefix(r)) > played)  # noqa: E731
        slice_s = max(0.05, self.rt.settings.lease_s / 2)
        while True:
            if record.get("status") not in TERMINAL and self.engine.lease_free(urls.call_sid, turn):
                if self.engine.submit(business, urls.call_sid, turn):
                    log.warning("took over turn %s/%d: its owner's lease had expired", urls.call_sid, turn)
            remaining = until - time.time()
            if progressed(record) or remaining <= 0:
                return record
            record = self.rt.state.wait_turn(urls.call_sid, turn, progressed, timeout_s=min(remaining, slice_s)) or record

    # --- the answer ----------------------------------------------------------------------------
    def _items(self, pieces: list[dict[str, Any]], urls: Urls) -> list[twiml.Speak]:
        items = []
        for piece in pieces:
            if piece.get("skip"):
                continue
            items.append(twiml.Speak(url=urls.clip(piece["url"]), text=piece["text"]) if piece.get("url")
                         else twiml.Speak(text=piece["text"]))
        return items

    def _mark_answer_started(self, urls: Urls, turn: int, t0: float) -> None:
        elapsed = (time.time() - t0) * 1000
        self.engine.update(urls.call_sid, turn, lambda r: {**r, "answer_ms": r.get("answer_ms") or elapsed,
                                                           "first_audio_ms": r.get("first_audio_ms") or elapsed})

    def _answer(self, business: Business, urls: Urls, turn: int, record: dict[str, Any], *, played: int, t0: float,
                outcome: str) -> str:
        self._mark_answer_started(urls, turn, t0)
        # Empty when a ready prefix already played every piece: then only the tail (listen / hang up) is left.
        items = self._items(record["pieces"][played:], urls)
        self._finish_turn(business, urls, turn, outcome, fallback=False)
        return self.finish(business, items, record.get("action") or "continue", urls)

    def _fallback(self, business: Business, urls: Urls, turn: int, record: dict[str, Any], played: int, t0: float) -> str:
        pieces = record.get("pieces") or []
        rest = " ".join(p["text"] for p in pieces[played:]).strip()
        self._mark_answer_started(urls, turn, t0)
        if rest:
            self._finish_turn(business, urls, turn, "fallback", fallback=True, said_from=played)
            return self.finish(business, [twiml.Speak(text=rest)], record.get("action") or "continue", urls)
        self._finish_turn(business, urls, turn, "apology", fallback=True)
        return self.finish(business, [twiml.Speak(text=business.prompt("apology"))], "continue", urls)

    def control(self, business: Business, urls: Urls, speech: str, t0: float) -> str:
        """The blocking reference flow: AI, then synthesis with a timeout, then <Play> (or <Say>)."""
        engine = self.engine
        call = engine.caller_said(urls.call_sid, speech)
        started = time.perf_counter()
        reply = engine.reply(business, call["history"][:-1], speech, urls.call_sid)
        ai_ms = (time.perf_counter() - started) * 1000
        engine.agent_said(urls.call_sid, reply.text)
        planned = reply_pieces(reply, business)
        futures = [self.rt.pool.submit(engine.make_clip, business, p["text"]) for p in planned]
        deadline = time.monotonic() + self.rt.settings.control_tts_timeout_s
        pieces: list[dict[str, Any]] = []
        for plan, future in zip(planned, futures):
            try:
                pieces.append({**future.result(timeout=max(0.0, deadline - time.monotonic())), **plan})
            except TimeoutError:
                pieces.append({**plan, "failed": "timeout"})
        all_played = all(p.get("url") or p.get("skip") for p in pieces)
        items = self._items(pieces, urls) if all_played else [twiml.Speak(text=reply.text)]
        elapsed = (time.time() - t0) * 1000
        record = {"pieces": pieces, "ai_ms": ai_ms, "tts_ms": sum(p.get("synth_ms", 0.0) for p in pieces),
                  "hops": 0, "filler": None, "first_audio_ms": elapsed, "answer_ms": elapsed, "action": reply.action,
                  "failure": reply.failure}
        outcome = "control" if all_played else "fallback"
        self._log_event(business, urls, CONTROL, {"outcome": outcome, "fallback": not all_played,
                                                  **_turn_fields(record, outcome, None if all_played else 0)}, t0,
                        turn=call["turn"])
        return self.finish(business, items, reply.action, urls)

    def _finish_turn(self, business: Business, urls: Urls, turn: int, outcome: str, *, fallback: bool,
                     said_from: int | None = None) -> None:
        """Write the turn's event exactly once (the first request to finish the turn does)."""
        flag = {"first": False}

        def mark(r: dict[str, Any]) -> dict[str, Any]:
            flag["first"] = not r.get("logged")
            return {**r, "logged": True}

        record = self.engine.update(urls.call_sid, turn, mark)
        if not flag["first"]:
            return
        self.pacing.observe_ai(business.id, record.get("ai_ms"))
        self._log_event(business, urls, "warmline",
                        {"outcome": outcome, "fallback": fallback, **_turn_fields(record, outcome, said_from)},
                        record["started"], turn=turn)

    def _log_event(self, business: Business, urls: Urls, arm: str, fields: dict[str, Any], t0: float,
                   turn: int | None = None) -> None:
        """Write the turn's :class:`~app.events.TurnEvent` to the log, the metrics and the structured log."""
        from app import metrics
        from app.events import TurnEvent

        now_ms = round((time.time() - t0) * 1000, 1)
        fields = {k: v for k, v in fields.items() if k != "fallback"}  # derived from what was heard
        event = TurnEvent(business=business.id, call=urls.call_sid, turn=turn, arm=arm, voice=business.voice.slug,
                          **{"time_to_first_audio_ms": now_ms, "time_to_answer_ms": now_ms, **fields}).to_dict()
        try:
            self.rt.events.append(event)
        except OSError as exc:
            log.error("turn event not written: %s", exc)
        metrics.record_turn(event)
        metrics.log_turn(event)


def _turn_fields(record: dict[str, Any], outcome: str, said_from: int | None = None) -> dict[str, Any]:
    """The :class:`~app.events.TurnEvent` fields of a finished turn record (``said_from``: the first
    piece ``<Say>``'d after the deadline)."""
    from app.events import reply_kind, sentence_outcomes, turn_failure

    sentences = sentence_outcomes(record.get("pieces") or [], said_from=said_from)
    return {
        "action": record.get("action") or "continue",
        "sentences": tuple(sentences),
        "reply": reply_kind(record, outcome),
        "failure": turn_failure(record, sentences, outcome),
        "filler": record.get("filler"),
        "hops": record.get("hops", 0),
        "ai_ms": record.get("ai_ms"),
        "tts_ms": record.get("tts_ms") or 0.0,
        "time_to_first_audio_ms": record.get("first_audio_ms") or record.get("answer_ms") or 0.0,
        "time_to_answer_ms": record.get("answer_ms") or 0.0,
        "time_to_filler_ms": record.get("filler_ms"),
    }


__all__ = ["CallFlow", "Urls"]
