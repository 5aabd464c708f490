"""The Twilio webhooks. Views are thin: check, parse, call :class:`~app.voice.flow.CallFlow`, render.

Every response is ``text/xml`` TwiML, whatever fails behind it: the blueprint's error handler turns
any exception into an apology (and a log line with the traceback), so Twilio never plays its
"application error".
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, abort, current_app, g, request
from werkzeug.exceptions import HTTPException

from app.business import BUSINESS_ID_RE, Business
from app.errors import StateError
from app.voice import twiml
from app.voice.flow import CallFlow, Urls
from app.voice.security import clean_speech, public_base, twilio_signed, valid_call_sid

log = logging.getLogger("warmline.voice")
bp = Blueprint("voice", __name__, url_prefix="/voice")

GENERIC_APOLOGY = "Sorry, we can't take your call right now. Please try again later."


def _flow() -> CallFlow:
    rt = current_app.extensions["warmline"]
    flow = rt.__dict__.get("flow")
    if flow is None:
        flow = rt.__dict__["flow"] = CallFlow(rt)
    return flow


def xml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/xml", headers={"Cache-Control": "no-store"})


def _business(business_id: str) -> Business:
    rt = current_app.extensions["warmline"]
    business = rt.businesses.get(business_id) if BUSINESS_ID_RE.match(business_id) else None
    if business is None:
        business = rt.businesses.by_number(request.form.get("To", ""))
    if business is None:
        abort(404)
    g.business = business
    return business


def _call_sid(value: str) -> str:
    if not valid_call_sid(value):
        abort(400)
    return value


def _urls(business: Business, call_sid: str) -> Urls:
    return Urls(base=public_base(), business_id=business.id, call_sid=call_sid)


@bp.before_request
def _start_clock() -> None:
    g.t0 = time.time()


@bp.post("/incoming/<business_id>")
@bp.post("/incoming", defaults={"business_id": ""})
@twilio_signed
def incoming(business_id: str) -> Response:
    business = _business(business_id)
    call_sid = _call_sid(request.form.get("CallSid", ""))
    return xml(_flow().incoming(business, _urls(business, call_sid)))


@bp.post("/process/<business_id>/<call_sid>")
@twilio_signed
def process(business_id: str, call_sid: str) -> Response:
    business = _business(business_id)
    call_sid = _call_sid(call_sid)
    speech = clean_speech(request.form.get("SpeechResult", ""), current_app.extensions["warmline"].settings.max_speech_chars)
    return xml(_flow().process(business, _urls(business, call_sid), speech, g.t0))


@bp.post("/tts-ready/<business_id>/<call_sid>")
@twilio_signed
def tts_ready(business_id: str, call_sid: str) -> Response:
    business = _business(business_id)
    call_sid = _call_sid(call_sid)
    try:
        turn = int(request.args.get("turn", ""))
        played = int(request.args.get("played", "0"))
    except ValueError:
        abort(400)
    if not (1 <= turn <= 10_000 and 0 <= played <= 1000):
        abort(400)
    return xml(_flow().ready(business, _urls(business, call_sid), turn, played, arrived=g.t0))


@bp.post("/partial/<business_id>/<call_sid>")
@twilio_signed
def partial(business_id: str, call_sid: str) -> Response:
    """Twilio's partialResultCallback: the running transcript while the caller speaks (the body is ignored)."""
    from app.voice.speculation import speculator

    business = _business(business_id)
    call_sid = _call_sid(call_sid)
    try:
        seq = int(request.form.get("SequenceNumber", ""))
        turn = int(request.args["turn"]) if "turn" in request.args else None
    except ValueError:
        abort(400)
    limit = current_app.extensions["warmline"].settings.max_speech_chars
    rt = current_app.extensions["warmline"]
    speculator(rt).on_partial(business, rt.state.get_call(call_sid), call_sid, turn=turn, seq=seq,
                              unstable=clean_speech(request.form.get("UnstableSpeechResult", ""), limit),
                              stable=clean_speech(request.form.get("StableSpeechResult", ""), limit))
    return xml(twiml.EMPTY)


@bp.post("/fallback/<business_id>")
@twilio_signed
def fallback(business_id: str) -> Response:
    """The number's Fallback URL: Twilio posts here (with ErrorCode, ErrorUrl) when another webhook failed."""
    business = _business(business_id)
    call_sid = _call_sid(request.form.get("CallSid", ""))
    error_url = request.form.get("ErrorUrl", "")[:2000]
    error_code = request.form.get("ErrorCode", "")[:16]
    return xml(_flow().fallback(business, _urls(business, call_sid), error_url, error_code))


@bp.post("/status/<business_id>")
@twilio_signed
def status(business_id: str) -> Response:
    _business(business_id)
    call_sid = _call_sid(request.form.get("CallSid", ""))
    if request.form.get("CallStatus") in ("completed", "busy", "failed", "no-answer", "canceled"):
        _flow().status(call_sid)
    return xml(twiml.EMPTY)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    """4xx from our own checks: still TwiML, so a misrouted call hears a sentence, not an error tone."""
    business = g.get("business")
    say = twiml.SayVoice(business.say_voice, business.language) if business else twiml.SayVoice("Polly.Joanna", "en-US")
    text = business.prompt("apology") if business else GENERIC_APOLOGY
    # A forged request gets its 403; anything else a caller may be on the line for gets TwiML with 200,
    # since Twilio plays its "application error" for any non-2xx.
    status = 403 if exc.code == 403 else 200
    log.warning("webhook %s answered with an apology: %s", request.path, exc)
    return xml(twiml.speak_then_hangup([twiml.Speak(text=text)], say), status=status)


@bp.errorhandler(StateError)
def _state_unavailable(exc: StateError) -> Response:
    """The call-state backend is down (say, Redis restarting): keep the caller on the line and ask again."""
    log.error("call state unavailable at %s: %s", request.path, exc)
    business = g.get("business")
    call_sid = (request.view_args or {}).get("call_sid") or request.form.get("CallSid", "")
    if business is None or not valid_call_sid(call_sid):
        return _unexpected(exc)
    flow = _flow()
    urls = _urls(business, call_sid)
    reprompt = twiml.Speak(text=business.prompt("reprompt"))
    return xml(twiml.speak_then_listen([reprompt], flow.listen(business, urls), flow.say_voice(business)))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    """Anything else behind a webhook: log it with its traceback, answer with a valid apology."""
    log.exception("webhook %s failed", request.path)
    business = g.get("business")
    try:
        body = _flow().apology(business) if business else twiml.speak_then_hangup(
            [twiml.Speak(text=GENERIC_APOLOGY)], twiml.SayVoice("Polly.Joanna", "en-US"))
    except Exception:  # noqa: BLE001 - the last line of defence must not raise
        body = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'
    return xml(body)
