"""The call flow: what each webhook answers. Flask-free; views parse requests and call these.

Every function returns a TwiML string and never raises for a failure behind it (state, store,
synthesis, responder): those become a filler, a <Say> or an apology. Timings are measured from
``t0`` (``time.time()`` when the webhook arrived).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from app.business import Business
from app.errors import InvalidText, StateError, WarmlineError
from app.speech.pieces import ends_sentence, plain
from app.speech.synthesizer import Clip
from app.voice import fillers, twiml
from app.voice.arms import CONTROL
from app.voice import turn as T
from app.voice.listening import listen_options
from app.voice.pacing import Pacing
from app.voice.turn import ABANDONED, FAILED, Turn
from app.voice.turns import TurnEngine, reply_pieces

log = logging.getLogger("warmline.flow")
FIXED_URL_TTL_S = 60.0
HOP_WORK_S = 0.05
"""What a hop needs after its wait (a state write, lookups, TwiML), kept out of the silence budget."""

ASSEMBLE_BUDGET_S = 0.5
"""The longest a webhook spends reading a phrase answer's pieces to assemble them into one clip
(an index hit after the first time; the local store takes milliseconds)."""


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

    def __init__(self, runtime: Any, *, engine: TurnEngine | None = None) -> None:
        self.rt = runtime
        self.engine = engine or TurnEngine(runtime)
        self._fixed_urls: dict[tuple[str, Any], tuple[str, float]] = {}  # (text, voice) -> (url, until); GIL-atomic ops
        self.pacing = Pacing()

    # --- small helpers -------------------------------------------------------------------------
    def say_voice(self, business: Business) -> twiml.SayVoice:
        return twiml.SayVoice(business.say_voice, business.language)

    def fixed(self, business: Business, text: str, urls: Urls) -> twiml.Speak:
        """A fixed phrase (greeting, filler, prompt): its precomputed clip, else <Say> now and synthesize for next time.

        A found clip's URL is remembered for FIXED_URL_TTL_S (every response carries two or three fixed
        phrases; a clip's URL changes only when a spooled clip reaches the store).
        """
        cache_key = (text, business.voice)
        now = time.monotonic()
        hit = self._fixed_urls.get(cache_key)
        if hit is not None and hit[1] > now:
            return twiml.Speak(url=urls.clip(hit[0]), text=text)
        try:
            clip = self.rt.synthesizer.lookup(text, business.voice)
        except InvalidText:
            clip = None
        if clip is not None:
            if len(self._fixed_urls) > 4096:
                self._fixed_urls.clear()
            self._fixed_urls[cache_key] = (clip.url, now + (FIXED_URL_TTL_S if not clip.spooled else 1.0))
            return twiml.Speak(url=urls.clip(clip.url), text=text)
        self._synthesize_later(business, text)
        return twiml.Speak(text=text)

    def _synthesize_later(self, business: Business, text: str) -> None:
        def job() -> None:
            try:
                self.rt.synthesizer.clip(text, business.voice)
            except WarmlineError as exc:
                log.warning("background synthesis of a fixed phrase failed: %s", exc)

        if self.rt.background_pool.try_submit(job) is None:
            log.info("background synthesis of a fixed phrase dropped (pool full); the next caller asks again")

    def listen(self, business: Business, urls: Urls, *, next_turn: int | None = None) -> twiml.Listen:
        """The <Gather> for the caller's next words; ``next_turn`` (their turn's number) when known,
        else read from the call state."""
        return twiml.Listen(
            action=urls.process(), language=business.language,
            still_there=self.fixed(business, business.prompt("still_there"), urls),
            goodbye=self.fixed(business, business.prompt("goodbye"), urls),
            **listen_options(business, urls, self.rt.state, next_turn=next_turn),
        )

    def finish(self, business: Business, items: list[twiml.Speak], action: str, urls: Urls, *,
               turn: int | None = None) -> str:
        """``items``, then the action's tail (listen, hang up, transfer); ``turn``: the turn that ends here."""
        say = self.say_voice(business)
        if action == "end":
            return twiml.speak_then_hangup(items, say)
        if action == "transfer" and business.transfer_number:
            return twiml.speak_then_dial(items, business.transfer_number, say)
        next_turn = turn + 1 if turn is not None else None
        return twiml.speak_then_listen(items, self.listen(business, urls, next_turn=next_turn), say)

    def apology(self, business: Business) -> str:
        """The last resort: an apology in the native voice, then hang up (always valid TwiML)."""
        return twiml.speak_then_hangup([twiml.Speak(text=business.prompt("apology"))], self.say_voice(business))

    # --- webhooks -------------------------------------------------------------------------------
    def incoming(self, business: Business, urls: Urls) -> str:
        next_turn = None
        try:
            next_turn = int(self.engine.ensure_call(business, urls.call_sid).get("turn") or 0) + 1
        except StateError as exc:
            log.warning("call state unavailable at greeting: %s", exc)
        greeting = self.fixed(business, business.greeting, urls)
        return twiml.speak_then_listen([greeting], self.listen(business, urls, next_turn=next_turn),
                                       self.say_voice(business))

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
            n = int(call.get("turn") or 0)
            current = self.engine.get(urls.call_sid, n) if n else None
            if current is not None and current.ended is None:
                return self.ready(business, urls, n, 0)
            reprompt = self.fixed(business, business.prompt("reprompt"), urls)
            return twiml.speak_then_listen([reprompt], self.listen(business, urls), self.say_voice(business))
        return self.incoming(business, urls)

    def status(self, call_sid: str) -> None:
        """The call ended: its state goes, and with it every turn (a job still running stops at its next write)."""
        self.rt.state.delete_call(call_sid)

    def process(self, business: Business, urls: Urls, speech: str, t0: float) -> str:
        if not speech:
            call = self.engine.ensure_call(business, urls.call_sid)
            self._log_event(business, urls, call.get("arm", "warmline"), {"outcome": "reprompt", "action": "continue"}, t0)
            reprompt = self.fixed(business, business.prompt("reprompt"), urls)
            return twiml.speak_then_listen([reprompt], self.listen(business, urls), self.say_voice(business))
        def answered_now(t: Turn) -> Turn:
            return T.end(T.answer_started(t, (time.time() - t0) * 1000), "instant", t.text or "")

        if self.engine.instant():
            done = self.engine.answer_now(business, urls.call_sid, speech, t0=t0, end_as=answered_now)
            if done is not None:  # fully cached: answered, and the history written, in one state write
                n, turn = done
                self._turn_ended(business, urls, n, turn, fallback=False, committed=True)
                return self.finish(business, self._items(business, turn.pieces or (), urls), turn.action or "continue",
                                   urls, turn=n)
        call = self.engine.caller_said(business, urls.call_sid, speech)
        if call.get("arm") == CONTROL:
            return self.control(business, urls, speech, t0, call)
        n = call["turn"]
        if call.get("previous_open"):
            self._interrupted(urls.call_sid, int(call["previous_open"]))
        settled = self._settle(business, urls.call_sid, n, speech, call)
        if self.engine.instant():
            turn = self.engine.run_inline(business, urls.call_sid, speech, t0=t0, call=call, end_as=answered_now)
            if turn.ended == "instant":  # fully cached: answered, ended and written in one go
                self._turn_ended(business, urls, n, turn, fallback=False)
                return self.finish(business, self._items(business, turn.pieces or (), urls), turn.action or "continue",
                                   urls, turn=n)
        else:
            turn = self.engine.begin(business, urls.call_sid, speech, t0=t0, call=call, settled=settled)
        if not turn.job_over:
            budget_ms = business.instant_budget_ms if business.instant_budget_ms is not None else self.rt.settings.instant_budget_ms
            budget_s = self.pacing.instant_budget_s(business.id, budget_ms / 1000,
                                                    remote_responder=bool(getattr(self.rt.responder, "remote", False)))
            expected = self._expected_wait(business, turn)
            if expected <= budget_ms / 1000:  # e.g. an adopted speculation about to finish: wait, no filler
                budget_s = max(budget_s, min(budget_ms / 1000, expected + fillers.OVERHEAD_S))
            if budget_s > 0:
                turn = self.engine.wait(urls.call_sid, n, lambda t: t.job_over, timeout_s=budget_s) or turn
        if turn.complete:
            return self._answer(business, urls, n, turn, played=0, outcome="instant")
        if turn.status == FAILED and not turn.text:
            return self._fallback(business, urls, n, turn, 0)  # refused (overloaded): say so now, no filler first
        filler_text = self._choose_filler(business, urls, turn, avoid=call.get("last_filler_text"))
        filler = self.fixed(business, filler_text, urls)
        elapsed = (time.time() - t0) * 1000
        self.engine.update(urls.call_sid, n, lambda t: T.filler_played(t, filler_text, elapsed))
        return twiml.speak_then_redirect([filler], urls.ready(n, 0), self.say_voice(business))

    # --- answering sooner: speculation, and fillers that serve the answer ------------------------
    def _settle(self, business: Business, call_sid: str, n: int, speech: str, call: dict[str, Any]) -> Any:
        """Adopt or drop the call's speculation for turn ``n`` (None when speculation is off or the state failed)."""
        if not (business.speculate and business.partial_results):
            return None
        from app.voice.speculation import speculator

        try:
            return speculator(self.rt).settle(call_sid, n, speech, history_len=len(call["history"]) - 1)
        except StateError as exc:
            log.warning("speculation of %s/%d not settled: %s", call_sid, n, exc)
            return None

    def _expected_wait(self, business: Business, turn: Turn) -> float:
        """Seconds until turn ``turn``'s first piece is expected playable (its job may have started earlier, speculatively)."""
        return fillers.PREDICTOR.remaining_s(business.id, self._job_elapsed(turn))

    @staticmethod
    def _job_elapsed(turn: Turn) -> float:
        """Seconds since turn ``turn``'s job started (a speculation's head start included)."""
        return time.time() - turn.started + float(turn.extra.get("head_start_ms") or 0.0) / 1000

    def _pick(self, business: Business, turn: Turn, phrases: Sequence[tuple[str, float]], avoid: str | None) -> str:
        """The phrase after which the answer is expected to start soonest (from the business's recent
        waits); while too few were seen, the longest phrase that ends before the answer is expected."""
        elapsed = self._job_elapsed(turn)
        best = fillers.choose_by_start(phrases, fillers.PREDICTOR.recent(business.id), elapsed,
                                       window_s=self.rt.settings.silence_budget_s, avoid=avoid)
        if best is not None:
            return best
        return fillers.choose(phrases, fillers.PREDICTOR.remaining_s(business.id, elapsed), avoid=avoid)

    def _durations(self, business: Business, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(text, seconds) of the phrases whose clips are published (their length is what the caller hears)."""
        out = []
        for text in dict.fromkeys(texts):
            try:
                clip = self.rt.synthesizer.lookup(text, business.voice)
            except InvalidText:
                clip = None
            if clip is not None:
                out.append((text, clip.duration_s))
        return out

    def _choose_filler(self, business: Business, urls: Urls, turn: Turn, *, avoid: str | None = None) -> str:
        """The first filler: the phrase after which the answer is expected to start soonest (a short
        "Sure." when it is close), from the business's short fillers and fillers whose clips exist; never
        ``avoid``, the filler the caller heard last (the call record's ``last_filler_text``, written
        when that turn ended)."""
        phrases = self._durations(business, (*business.short_fillers, *business.fillers))
        if not phrases:
            return self.engine.next_filler(business, urls.call_sid)
        return self._pick(business, turn, phrases, avoid)

    def _choose_bridge(self, business: Business, urls: Urls, turn: Turn) -> str:
        """A bridge chosen like the filler (the hold phrase only when a long wait is still expected),
        never the one just played; once the caller
        has waited ``fillers.SORRY_AFTER_S``, the honest "sorry for the wait", once."""
        sorry = business.prompt("sorry_wait")
        if time.time() - turn.started >= fillers.SORRY_AFTER_S and sorry not in turn.bridges:
            return sorry
        names = (*business.short_fillers, business.prompt("second_filler"), business.prompt("hold"))
        phrases = self._durations(business, names)
        if not phrases:
            return self.pacing.next_bridge(business, turn.bridges)
        last = turn.bridges[-1] if turn.bridges else turn.filler
        if all(text == last for text, _ in phrases):  # only the phrase just played has a clip: never repeat it
            return self.pacing.next_bridge(business, turn.bridges)
        return self._pick(business, turn, phrases, last)

    def _interrupted(self, call_sid: str, n: int) -> None:
        """The caller spoke again before turn ``n`` ended: end it (its job stops); nothing of it was heard."""
        self.engine.end(call_sid, n, "interrupted", "", 0.0)

    def ready(self, business: Business, urls: Urls, turn: int, played: int, *, arrived: float | None = None) -> str:
        """A ``tts-ready`` hop: the next ready pieces, the rest of the answer, a bridge, or the deadline's <Say>.

        ``arrived`` (epoch s, default now): when the request came in; the wait in silence is counted from
        it, so the time spent before waiting (signature, state) is part of the silence budget too.
        """
        arrived = time.time() if arrived is None else arrived
        n = turn
        current = self.engine.get(urls.call_sid, n)
        if current is None:
            # State lost (expired, or a Redis restart): ask again rather than fail.
            reprompt = self.fixed(business, business.prompt("reprompt"), urls)
            return twiml.speak_then_listen([reprompt], self.listen(business, urls), self.say_voice(business))
        if current.ended is not None:
            return self._replay_end(business, urls, current, played)
        settings = self.rt.settings
        deadline = current.started + settings.turn_deadline_s
        # Every hop waits at most the silence budget: the caller is in silence while we wait.
        wait_s = min(settings.hop_s, settings.silence_budget_s)
        current = self._wait_for_progress(business, urls, n, played, current,
                                          until=min(arrived + wait_s - HOP_WORK_S, deadline))
        if not current.job_over and len(current.ready_prefix()) <= played:
            # Never start a bridge when the answer is expected within a moment: wait that moment instead.
            grace = min(self._expected_wait(business, current), fillers.GRACE_S)
            if grace > 0:
                current = self._wait_for_progress(business, urls, n, played, current,
                                                  until=min(arrived + wait_s - HOP_WORK_S + grace, deadline))
        ready = current.ready_prefix()
        # Every piece ready is the whole answer only once the reply is known: a streamed reply's pieces grow.
        if current.complete or (current.text is not None and current.pieces and len(ready) == len(current.pieces)):
            return self._answer(business, urls, n, current, played=played, outcome="filler", hop=True)
        if len(ready) > played:
            elapsed = (time.time() - current.started) * 1000
            self.engine.update(urls.call_sid, n, lambda t: T.answer_started(T.hopped(t), elapsed))
            items = self._items(business, ready[played:], urls)
            return twiml.speak_then_redirect(items, urls.ready(n, len(ready)), self.say_voice(business))
        if time.time() >= deadline or current.status in (FAILED, ABANDONED):
            return self._fallback(business, urls, n, current, played, hop=True)
        bridge = self._choose_bridge(business, urls, current)
        self.engine.update(urls.call_sid, n, lambda t: T.bridged(T.hopped(t), bridge))
        return twiml.speak_then_redirect([self.fixed(business, bridge, urls)], urls.ready(n, played),
                                         self.say_voice(business))

    def _wait_for_progress(self, business: Business, urls: Urls, n: int, played: int, turn: Turn,
                           *, until: float) -> Turn:
        """Wait until more of the turn is playable or ``until`` (epoch s); adopt the turn if its holder died."""
        progressed = lambda t: t.job_over or len(t.ready_prefix()) > played  # noqa: E731
        slice_s = max(0.05, self.rt.settings.lease_s / 2)
        while True:
            turn = self.engine.adopt_if_orphaned(business, urls.call_sid, n, turn)
            remaining = until - time.time()
            if progressed(turn) or remaining <= 0:
                return turn
            turn = self.engine.wait(urls.call_sid, n, progressed, timeout_s=min(remaining, slice_s)) or turn

    # --- the answer ----------------------------------------------------------------------------
    def _items(self, business: Business, pieces: Sequence[Mapping[str, Any]], urls: Urls) -> list[twiml.Speak]:
        """A ``<Play>`` per piece with a clip, one ``<Say>`` per run of pieces without (join marks never spoken).

        At the ``phrase`` level each sentence's run of 2+ consecutive clips in the business's own voice
        is ONE ``<Play>`` of a clip assembled from them (``Synthesizer.assemble_texts``: natural pauses
        at the joins, not Twilio's gaps between ``<Play>`` verbs); a turn job assembles each sentence
        as its clips are made (``answer.sentence_assembler``), so here it is an index hit, and the
        same sentence in another answer is one too. If that cannot be done in ASSEMBLE_BUDGET_S, the
        pieces play one by one.
        """
        items: list[twiml.Speak] = []
        run: list[Mapping[str, Any]] = []

        def flush() -> None:
            one = self._assembled(business, run) if len(run) >= 2 and business.splice == "phrase" else None
            if one is not None:
                items.append(twiml.Speak(url=urls.clip(one.url), text=one.text))
            else:
                items.extend(twiml.Speak(url=urls.clip(p["url"]), text=plain(p["text"])) for p in run)
            run.clear()

        for piece in pieces:
            if piece.get("skip"):
                continue
            if piece.get("url") and not piece.get("voice"):
                run.append(piece)
                if ends_sentence(str(piece["text"])):
                    flush()
                continue
            flush()
            if piece.get("url"):
                items.append(twiml.Speak(url=urls.clip(piece["url"]), text=plain(piece["text"])))
            elif items and items[-1].url is None:  # consecutive <Say>s: one sentence, not fragments
                items[-1] = twiml.Speak(text=f"{items[-1].text} {plain(piece['text'])}")
            else:
                items.append(twiml.Speak(text=plain(piece["text"])))
        flush()
        return items

    def _assembled(self, business: Business, run: Sequence[Mapping[str, Any]]) -> Clip | None:
        """One clip of the pieces of ``run`` (all published), or None (then they play one by one)."""
        try:
            return self.rt.synthesizer.assemble_texts([p["text"] for p in run], business.voice,
                                                      deadline=time.time() + ASSEMBLE_BUDGET_S)
        except WarmlineError as exc:
            log.warning("could not assemble %d pieces into one clip, playing them one by one: %s", len(run), exc)
            return None

    def _answer(self, business: Business, urls: Urls, n: int, turn: Turn, *, played: int, outcome: str,
                hop: bool = False) -> str:
        # Empty when a ready prefix already played every piece: then only the tail (listen / hang up) is left.
        items = self._items(business, (turn.pieces or ())[played:], urls)
        spoken = [p for p in turn.pieces or () if not p.get("skip")]
        said = [p for p in spoken if p.get("failed")]  # no clip in time: the piece is <Say>'d
        if spoken and len(said) == len(spoken):
            outcome = "fallback"
        heard = turn.text or " ".join(plain(p["text"]) for p in spoken)
        self._finish_turn(business, urls, n, outcome, fallback=bool(said), heard=heard, hop=hop)
        return self.finish(business, items, turn.action or "continue", urls, turn=n)

    def _fallback(self, business: Business, urls: Urls, n: int, turn: Turn, played: int, *, hop: bool = False) -> str:
        pieces = turn.pieces or ()
        rest = " ".join(plain(p["text"]) for p in pieces[played:]).strip()
        if rest:
            self._finish_turn(business, urls, n, "fallback", fallback=True, heard=turn.text or rest, hop=hop,
                              said_from=played)
            return self.finish(business, [twiml.Speak(text=rest)], turn.action or "continue", urls, turn=n)
        apology = business.prompt("apology")
        self._finish_turn(business, urls, n, "apology", fallback=True, heard=apology, hop=hop)
        return self.finish(business, [twiml.Speak(text=apology)], "continue", urls, turn=n)

    def _replay_end(self, business: Business, urls: Urls, turn: Turn, played: int) -> str:
        """A hop of a turn that already ended (Twilio re-posted a lost response): answer it again, log nothing."""
        if turn.complete and turn.ended not in ("fallback", "apology"):
            return self.finish(business, self._items(business, (turn.pieces or ())[played:], urls), turn.action or "continue", urls)
        action = turn.action or "continue" if turn.ended == "fallback" else "continue"
        return self.finish(business, [twiml.Speak(text=turn.heard)] if turn.heard else [], action, urls)

    def control(self, business: Business, urls: Urls, speech: str, t0: float, call: dict[str, Any]) -> str:
        """The blocking reference flow: AI, then synthesis with a timeout, then <Play> (or <Say>).

        Synthesis runs on the control arm's own pool; what is not ready by the timeout is cancelled
        (a queued clip never starts; a running one is bounded by the same deadline).
        """
        engine = self.engine
        started = time.perf_counter()
        reply = engine.reply(business, list(call["history"])[:-1], speech, urls.call_sid)
        ai_ms = (time.perf_counter() - started) * 1000
        planned = reply_pieces(reply, business)
        timeout_s = self.rt.settings.control_tts_timeout_s
        deadline = time.time() + timeout_s
        pool = self.rt.control_pool
        futures = [pool.try_submit(partial(engine.make_clip, business, p["text"], deadline=deadline)) for p in planned]
        until = time.monotonic() + timeout_s
        pieces: list[dict[str, Any]] = []
        for plan, future in zip(planned, futures):
            if future is None:
                pieces.append({**plan, "failed": "overloaded"})
                continue
            try:
                pieces.append({**future.result(timeout=max(0.0, until - time.monotonic())), **plan})
            except TimeoutError:
                future.cancel()
                pieces.append({**plan, "failed": "timeout"})
        all_played = all(p.get("url") or p.get("skip") for p in pieces)
        items = self._items(business, pieces, urls) if all_played else [twiml.Speak(text=reply.text)]
        engine.commit(urls.call_sid, call["turn"], reply.text)  # heard either way: as clips, or <Say>'d
        elapsed = (time.time() - t0) * 1000
        record = {"pieces": pieces, "ai_ms": ai_ms, "tts_ms": sum(p.get("synth_ms", 0.0) for p in pieces),
                  "hops": 0, "filler": None, "first_audio_ms": elapsed, "answer_ms": elapsed, "action": reply.action,
                  "failure": reply.failure}
        outcome = "control" if all_played else "fallback"
        self._log_event(business, urls, CONTROL, {"outcome": outcome, "fallback": not all_played,
                                                  **_turn_fields(record, outcome, None if all_played else 0)}, t0,
                        turn=call["turn"])
        return self.finish(business, items, reply.action, urls, turn=call["turn"])

    def _finish_turn(self, business: Business, urls: Urls, n: int, outcome: str, *, fallback: bool, heard: str,
                     hop: bool = False, said_from: int | None = None) -> None:
        """End the turn, commit what the caller heard to the history and write the turn's event -- exactly once
        (the first request to end the turn does; its job, if still running, is abandoned). ``said_from``: the
        first piece <Say>'d after the deadline."""
        now = time.time()
        try:
            ended = self.engine.update(urls.call_sid, n, lambda t: T.end(
                T.answer_started(T.hopped(t) if hop else t, (now - t.started) * 1000), outcome, heard,
                said_from=said_from))
        except T.IllegalTransition:
            return  # another request ended it first
        if ended is not None:
            self._turn_ended(business, urls, n, ended, fallback=fallback)

    def _turn_ended(self, business: Business, urls: Urls, n: int, ended: Turn, *, fallback: bool,
                    committed: bool = False) -> None:
        """After the one write that ended turn N: commit what was heard (unless ``committed``), learn its pace,
        write its event."""
        if not committed:
            self.engine.commit(urls.call_sid, n, ended.heard or "", filler=ended.filler)
        self.pacing.observe_ai(business.id, ended.ai_ms)
        self._log_event(business, urls, "warmline",
                        {"outcome": ended.ended, "fallback": fallback,
                         **_turn_fields(ended.to_dict(), ended.ended or "", ended.said_from)},
                        ended.started, turn=n)

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
        "extra": _extra_fields(record),
    }


def _extra_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The turn event's extra fields: what speculation did (``speculation``, ``speculative_calls``, head start)
    and when its answer could first be played (``first_playable_ms``, from the turn's start)."""
    extra = record.get("extra") or {}
    playable = {"first_playable_ms": extra["first_playable_ms"]} if "first_playable_ms" in extra else {}
    if "speculation" not in extra:
        return playable
    return {"speculation": extra.get("speculation"), "speculative_calls": int(extra.get("speculative_calls") or 0),
            "speculation_head_start_ms": extra.get("head_start_ms"), **playable}


__all__ = ["CallFlow", "Urls"]
