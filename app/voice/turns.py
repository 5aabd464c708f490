"""Turn jobs: responder -> pieces -> clips, with progress in the shared call state.

A turn is started by the ``process`` webhook and runs on the per-process pool while the caller
hears a filler. Its progress lives in the shared state (never in a worker's memory), so any
worker or host can answer the ``tts-ready`` redirect. A lease marks who is running a turn; when
its owner dies the lease expires and the next ``tts-ready`` request takes the turn over,
continuing from the text and clips already recorded.

Thread-safe; one engine per process. No Flask here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from app.business import Business
from app.errors import InvalidText, StateError, WarmlineError
from app.ids import turn_lease_name as lease_name
from app.responders.base import Reply
from app.speech.fallback import chain_for
from app.speech.pieces import split_pieces
from app.voice.arms import arm_for

log = logging.getLogger("warmline.turnjob")

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
DEADLINE_MARGIN_S = 0.3
"""Clips must be ready this long before the turn deadline, so the hop waiting for them can still play them."""
TERMINAL = (DONE, FAILED)


def ready_prefix(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The leading pieces that can be spoken now (a clip URL, or a failed piece to <Say>)."""
    if not record or not record.get("pieces"):
        return []
    ready = []
    for piece in record["pieces"]:
        if piece.get("url") or piece.get("failed"):
            ready.append(piece)
        else:
            break
    return ready


def is_complete(record: dict[str, Any] | None) -> bool:
    """True when the turn is over and every piece can be spoken."""
    if not record or record.get("status") not in TERMINAL:
        return False
    pieces = record.get("pieces") or []
    return record.get("status") == DONE and len(ready_prefix(record)) == len(pieces)


def reply_pieces(reply: Reply, business: Business) -> list[dict[str, Any]]:
    """The reply split into piece entries; a piece holding a responder-marked value is flagged ``slot``
    (reports and the precompute plan never list it: it may be a caller's name or booking)."""
    from app.events import marked_in

    values = list(reply.marked().values())
    pieces = [{"text": p, **({"slot": True} if marked_in(p, values) else {})}
              for p in split_pieces(reply.text, business.splice, reply.marks)]
    return pieces or [{"text": business.prompt("apology")}]


class TurnEngine:
    """Starts, runs and takes over turns. ``runtime`` supplies state, synthesizer, responder, pool."""

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime

    @property
    def owner(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    # --- calls -------------------------------------------------------------------------------
    def ensure_call(self, business: Business, call_sid: str) -> dict[str, Any]:
        """The call's record, created (with its rollout arm) on first sight."""

        def create(call: dict[str, Any] | None) -> dict[str, Any]:
            if call:
                return call
            return {
                "business": business.id,
                "arm": arm_for(call_sid, use_proactive_filler=business.use_proactive_filler,
                               rollout_percent=business.rollout_percent),
                "created": time.time(),
                "history": [],
                "turn": 0,
                "last_filler": -1,
                "extra": {},
            }

        return self.rt.state.update_call(call_sid, create, self.rt.settings.call_ttl_s)

    def next_filler(self, business: Business, call_sid: str) -> str:
        """The next filler variant for this call: rotates, never the same one twice in a row."""

        def rotate(call: dict[str, Any] | None) -> dict[str, Any]:
            call = dict(call or {})
            call["last_filler"] = (call.get("last_filler", -1) + 1) % len(business.fillers)
            return call

        call = self.rt.state.update_call(call_sid, rotate, self.rt.settings.call_ttl_s)
        return business.fillers[call["last_filler"]]

    # --- turns -------------------------------------------------------------------------------
    def caller_said(self, call_sid: str, utterance: str) -> dict[str, Any]:
        """Count a new turn and append the caller's words to the history; returns the call record."""

        def add(call: dict[str, Any] | None) -> dict[str, Any]:
            call = dict(call or {})
            call["turn"] = call.get("turn", 0) + 1
            call["history"] = list(call.get("history", [])) + [{"role": "caller", "text": utterance}]
            return call

        return self.rt.state.update_call(call_sid, add, self.rt.settings.call_ttl_s)

    def agent_said(self, call_sid: str, text: str) -> None:
        """Append the agent's reply to the history (never re-creating a call that has ended)."""
        self.rt.state.update_call(call_sid, lambda c: {**c, "history": list(c.get("history", []))
                                                       + [{"role": "agent", "text": text}]},
                                  self.rt.settings.call_ttl_s, create=False)

    def begin(self, business: Business, call_sid: str, utterance: str, *, t0: float) -> int:
        """Record the caller's words, create turn N and start its job; returns N."""
        turn = self.caller_said(call_sid, utterance)["turn"]
        record = {
            "status": PENDING, "utterance": utterance, "started": t0, "text": None, "action": None,
            "pieces": None, "ai_ms": None, "tts_ms": 0.0, "hops": 0, "filler": None,
            "first_audio_ms": None, "answer_ms": None, "logged": False, "owner": None,
        }
        self.rt.state.put_turn(call_sid, turn, record, self.rt.settings.call_ttl_s)
        self.submit(business, call_sid, turn)
        return turn

    def submit(self, business: Business, call_sid: str, turn: int) -> bool:
        """Run the turn on this process's pool if nobody holds its lease; True if we took it."""
        name = lease_name(call_sid, turn)
        if not self.rt.state.acquire_lease(name, self.owner, self.rt.settings.lease_s):
            return False
        self.rt.pool.submit(self._run_leased, business, call_sid, turn)
        return True

    def _run_leased(self, business: Business, call_sid: str, turn: int) -> None:
        name = lease_name(call_sid, turn)
        done = threading.Event()
        lease_s = self.rt.settings.lease_s

        def heartbeat() -> None:
            # Keep the lease while this process lives (a slow AI call must not look like a dead owner).
            while not done.wait(lease_s / 3):
                try:
                    if not self.rt.state.renew_lease(name, self.owner, lease_s):
                        log.warning("lost the lease of turn %s/%d", call_sid, turn)
                        return
                except StateError as exc:
                    log.warning("could not renew the lease of turn %s/%d: %s", call_sid, turn, exc)

        beat = threading.Thread(target=heartbeat, name=f"lease-{call_sid[-6:]}-{turn}", daemon=True)
        beat.start()
        try:
            self.run(business, call_sid, turn)
        except Exception as exc:  # the pool thread's boundary: record the failure for the waiting webhook
            log.exception("turn %s/%d failed", call_sid, turn)
            error = f"{type(exc).__name__}: {exc}"
            try:
                self._update(call_sid, turn, lambda r: {**r, "status": FAILED, "error": error})
            except StateError:
                log.error("could not record the failure of turn %s/%d", call_sid, turn)
        finally:
            done.set()
            beat.join()
            try:
                self.rt.state.release_lease(name, self.owner)
            except StateError:
                pass

    def run(self, business: Business, call_sid: str, turn: int) -> None:
        """Produce turn N: the reply (unless already recorded), then a clip for every piece still missing."""
        record = self.rt.state.get_turn(call_sid, turn)
        if record is None:
            return
        if record.get("text") is None:
            self._update(call_sid, turn, lambda r: {**r, "status": RUNNING, "owner": self.owner})
            call = self.rt.state.get_call(call_sid) or {}
            history = list(call.get("history", []))[:-1]
            started = time.perf_counter()
            reply = self.reply(business, history, record["utterance"], call_sid)
            ai_ms = (time.perf_counter() - started) * 1000
            pieces = reply_pieces(reply, business)
            record = self._update(call_sid, turn, lambda r: {**r, "text": reply.text, "action": reply.action,
                                                              "pieces": pieces, "ai_ms": round(ai_ms, 1),
                                                              "failure": reply.failure})
            if record is None:
                log.warning("turn %s/%d vanished from the call state (expired or a state restart); dropped",
                            call_sid, turn)
                return
            self.agent_said(call_sid, reply.text)
        deadline = float(record.get("started") or time.time()) + self.rt.settings.turn_deadline_s - DEADLINE_MARGIN_S
        for i, piece in enumerate(record.get("pieces") or []):
            if piece.get("url") or piece.get("failed"):
                continue
            self._update(call_sid, turn, self._set_piece(i, self.make_clip(business, piece["text"], deadline=deadline)))
        self._update(call_sid, turn, lambda r: {**r, "status": DONE})

    def reply(self, business: Business, history: list[dict[str, Any]], utterance: str, call_sid: str) -> Reply:
        from app.responders.openai import safe_reply

        return safe_reply(self.rt.responder, business, history, utterance)

    def make_clip(self, business: Business, text: str, *, deadline: float | None = None) -> dict[str, Any]:
        """A piece's clip as a state entry; a failure becomes a piece to <Say> instead.

        ``deadline`` (epoch seconds) bounds retries and fallback voices; the default is the control
        arm's synthesis timeout from now (every caller is a live call). The business's fallback
        voices (``app.speech.fallback.chain_for``) speak when its own voice cannot in time.
        """
        if deadline is None:
            deadline = time.time() + self.rt.settings.control_tts_timeout_s
        try:
            clip = self.rt.synthesizer.clip(text, business.voice, deadline=deadline, fallbacks=chain_for(business))
        except InvalidText as exc:
            return {"text": text, "failed": f"InvalidText: {exc}", "skip": True}
        except WarmlineError as exc:
            log.warning("synthesis failed, piece will be <Say>'d: %s: %s", type(exc).__name__, exc)
            from app import metrics

            metrics.record_synthesis_error(business.voice.provider, exc)
            return {"text": text, "failed": f"{type(exc).__name__}: {exc}"}
        piece = {
            "text": text, "url": clip.url, "key": clip.key, "hit": clip.hit, "source": clip.source,
            "duration_s": round(clip.duration_s, 3), "synth_ms": round(clip.synth_ms, 1), "chars": clip.chars,
        }
        if clip.fallback:
            piece["voice"] = clip.voice  # spoken by a fallback voice
            piece["own_error"] = clip.own_error or None  # why the own voice could not (reports, metrics)
            if clip.own_error:
                from app import metrics

                metrics.record_synthesis_error(business.voice.provider, clip.own_error)
        if clip.spooled:
            piece["spooled"] = True  # served from this host's edge until the store takes it
        return piece

    @staticmethod
    def _set_piece(i: int, piece: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def apply(record: dict[str, Any]) -> dict[str, Any]:
            pieces = list(record.get("pieces") or [])
            pieces[i] = {**piece, "slot": True} if pieces[i].get("slot") else piece
            return {**record, "pieces": pieces, "tts_ms": (record.get("tts_ms") or 0.0) + piece.get("synth_ms", 0.0)}

        return apply

    def _update(self, call_sid: str, turn: int,
                fn: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
        """Apply ``fn`` to turn N's record; None (nothing written) when the record is gone.

        Never re-creates a lost record (the state expired, or Redis restarted empty): a partial
        record without ``started`` would break the hops; a missing one makes them re-prompt.
        """
        return self.rt.state.update_turn(call_sid, turn, lambda r: fn(dict(r or {})), self.rt.settings.call_ttl_s,
                                         create=False)

    def update(self, call_sid: str, turn: int,
               fn: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
        return self._update(call_sid, turn, fn)

    def lease_free(self, call_sid: str, turn: int) -> bool:
        return self.rt.state.lease_owner(lease_name(call_sid, turn)) is None
