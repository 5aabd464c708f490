"""Joins a listener does not notice: phrase pieces, in-context Piper pieces, levelled and faded
published clips, one assembled clip per answer, and the same keys in precompute and the live path."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import urlsplit
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.business import load_businesses
from app.speech.audio import EDGE_MAX, FADE_MS, TARGET_LEVEL_DBFS, active_level_dbfs
from app.speech.canon import canon
from app.speech.keys import assembled_key, content_key
from app.speech.pieces import COMMA_PAUSE_MS, SENTENCE_PAUSE_MS, join_pauses, mark_joins, plain, split_pieces
from app.speech.providers.deepgram import DeepgramProvider
from app.speech.providers.piper import PiperProvider, _word_bounds
from app.speech.synthesizer import Synthesizer
from app.speech.ulaw import lin2ulaw, ulaw2lin
from app.speech.voices import Voice
from app.speech.wav import parse_ulaw_wav, ulaw_wav
from cdn.index import KeyIndex
from cdn.local import LocalStore
from precompute.plan import build_plan, fixed_pieces
from tests.conftest import ROOT
from tests.fakes import ToneProvider

PIPER = Voice("piper", "en_US-joe-medium")
AURA = Voice("deepgram", "aura-2-thalia-en")
BOOKING = "I am booking an appointment on March 13th at 1:15 pm. Is that right?"


def make_synth(tmp_path: Path, providers) -> Synthesizer:
    return Synthesizer(store=LocalStore(tmp_path / "cdn", "/cdn"), index=KeyIndex(tmp_path / "index"), providers=providers)


def pcm_of(synth: Synthesizer, clip) -> np.ndarray:
    return ulaw2lin(parse_ulaw_wav(synth.store.get(clip.name)).ulaw)


# --- phrase pieces ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "marks", "pieces"),
    [
        (BOOKING, (), ["I am booking an appointment on~", "~March 13th~", "~at~", "~1:15 pm.", "Is that right?"]),
        ("You would like the appointment at 2 pm on March 6th, is that correct?", (),
         ["You would like the appointment at~", "~2 pm~", "~on~", "~March 6th,", "is that correct?"]),
        ("Their contact number is 650-340-8974.", (), ["Their contact number is~", "~650-340-8974."]),
        ("Sure. Anything else?", (), ["Sure.", "Anything else?"]),
        ("Try Ellsworth Elizabeth. They are in St. Helena.", (("name", 4, 23), ("city", 37, 47)),
         ["Try~", "~Ellsworth Elizabeth.", "They are in~", "~St. Helena."]),
    ],
)
def test_phrase_pieces_carry_join_marks_where_no_pause_falls(text, marks, pieces):
    assert split_pieces(text, "phrase", marks) == pieces
    assert " ".join(plain(p) for p in pieces) == " ".join(text.split())


def test_mark_joins_moves_leading_punctuation_back():
    assert mark_joins(["Booked for", "Sam", ", see you then."]) == ["Booked for~", "~Sam,", "see you then."]


def test_join_pauses_follow_the_punctuation():
    assert join_pauses(["booked on~", "~march thirteenth,", "is that right?", "bye."]) == [0, COMMA_PAUSE_MS, SENTENCE_PAUSE_MS]
    assert join_pauses(["one."]) == []


# --- Piper speaks a marked piece inside a running sentence ----------------------------------------
def test_word_bounds_cut_midway_between_the_carriers_and_the_words():
    # ^ h i <space> t h e r e <space> y o u $   (sample counts per phoneme)
    aligned = [("^", 10), ("h", 10), ("i", 10), (" ", 6), ("ð", 10), ("ɛ", 10), (" ", 4), ("j", 10), ("u", 10), ("$", 5)]
    total = sum(n for _, n in aligned)
    assert _word_bounds(aligned, [2, 2, 2], total) == ((30 + 36) // 2, (56 + 60) // 2)
    assert _word_bounds(aligned, [0, 4, 2], total) == (0, (56 + 60) // 2)
    assert _word_bounds(aligned, [2, 4, 0], total) == ((30 + 36) // 2, total)
    # the carriers are counted from each end: a piece phonemized with one sound more or less in
    # context is still cut at the carriers
    assert _word_bounds(aligned, [2, 3, 2], total) == ((30 + 36) // 2, (56 + 60) // 2)
    assert _word_bounds(aligned, [2, 2, 4], total) is None  # carriers leave the piece no sound: no cut
    assert _word_bounds(aligned, [2, 2, 2], total + 1) is None
    assert _word_bounds([], [0, 1, 0], 0) is None


@pytest.fixture(scope="module")
def piper() -> PiperProvider:
    return PiperProvider()


def test_marked_pieces_are_cut_from_running_speech(piper, tmp_path):
    synth = make_synth(tmp_path, {"piper": piper})
    alone = pcm_of(synth, synth.clip("On Monday.", PIPER))
    middle = pcm_of(synth, synth.clip("~on Monday~", PIPER))
    pad = 8000 * 60 // 1000
    # a sentence of its own is trimmed to a 60 ms pad of silence each side; a cut piece starts and
    # ends in the middle of speech (only its 5 ms fades are quiet)
    assert np.max(np.abs(alone[: pad - 40].astype(int))) < 300 and np.max(np.abs(alone[-pad + 40:].astype(int))) < 300
    fade = int(8000 * FADE_MS / 1000)
    assert np.max(np.abs(middle[fade: fade + 160].astype(int))) > 300
    assert np.max(np.abs(middle[-fade - 160: -fade].astype(int))) > 300
    assert len(middle) < len(alone)  # no pads, and no phrase-final lengthening


# --- every published clip: one loudness, no click at either edge ------------------------------------
@pytest.mark.parametrize("text", ["Thanks for calling Harbourside Dental.", "~at~", "Sure,", "booking on~",
                                  "~one fifteen p.m.", "Call 510-581-1274."])
def test_published_piper_clips_are_levelled_and_faded(piper, tmp_path, text):
    synth = make_synth(tmp_path, {"piper": piper})
    pcm = pcm_of(synth, synth.clip(text, PIPER))
    assert abs(active_level_dbfs(pcm, 8000) - TARGET_LEVEL_DBFS) <= 0.6
    assert abs(int(pcm[0])) <= EDGE_MAX and abs(int(pcm[-1])) <= EDGE_MAX
    fade = int(8000 * FADE_MS / 1000)
    ramp = np.abs(pcm[:fade].astype(int))
    assert ramp.max() <= np.abs(pcm.astype(int)).max()  # the first 5 ms rise, no step at sample 0


@pytest.mark.parametrize("amplitude", [1500, 30000])
def test_published_deepgram_clips_are_levelled_and_faded(tmp_path, amplitude):
    loud = (np.sin(2 * np.pi * 300 * np.arange(8000) / 8000) * amplitude).astype(np.int16)  # starts and ends at full level

    def speak(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=ulaw_wav(lin2ulaw(loud)), headers={"dg-request-id": "r"})

    provider = DeepgramProvider(client=httpx.Client(transport=httpx.MockTransport(speak)), api_key="k")
    synth = make_synth(tmp_path, {"deepgram": provider})
    pcm = pcm_of(synth, synth.clip("Is there anything else?", AURA))
    assert abs(active_level_dbfs(pcm, 8000) - TARGET_LEVEL_DBFS) <= 0.3
    assert abs(int(pcm[0])) <= EDGE_MAX and abs(int(pcm[-1])) <= EDGE_MAX


def test_deepgram_is_sent_the_words_without_join_marks(tmp_path):
    sent: list[str] = []

    def speak(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["text"])
        return httpx.Response(200, content=ulaw_wav(lin2ulaw(np.full(800, 3000, dtype=np.int16))), headers={"dg-request-id": "r"})

    provider = DeepgramProvider(client=httpx.Client(transport=httpx.MockTransport(speak)), api_key="k")
    synth = make_synth(tmp_path, {"deepgram": provider})
    synth.clip("~March 13th~", AURA)
    synth.clip("~at 1:15 pm.", AURA)
    assert sent == ["march thirteenth", "at one fifteen p.m."]


# --- one clip per answer ----------------------------------------------------------------------------
def test_assemble_makes_one_content_addressed_clip_with_natural_pauses(tmp_path):
    provider = ToneProvider()
    synth = make_synth(tmp_path, {"piper": provider})
    pieces = split_pieces(BOOKING, "phrase")
    clips = [synth.clip(p, PIPER) for p in pieces]
    calls = len(provider.calls)
    one = synth.assemble(clips, PIPER)
    pauses = join_pauses([c.text for c in clips])
    assert pauses == [0, 0, 0, SENTENCE_PAUSE_MS]
    assert one.key == assembled_key([c.key for c in clips], pauses, PIPER)
    assert (one.source, one.hit, len(provider.calls)) == ("assembled", True, calls)  # nothing synthesized
    assert one.text == "i am booking an appointment on march thirteenth at one fifteen p.m. is that right?"
    parts = [parse_ulaw_wav(synth.store.get(c.name)).ulaw for c in clips]
    overlap = int(8000 * FADE_MS / 1000)
    expected = sum(len(p) for p in parts) - 3 * overlap + 8000 * SENTENCE_PAUSE_MS // 1000
    data = parse_ulaw_wav(synth.store.get(one.name)).ulaw
    assert len(data) == expected
    # the sentence pause is digital silence; the clip after it is there byte for byte
    start = expected - len(parts[-1])
    assert data[start:] == parts[-1]
    assert set(data[start - 8000 * SENTENCE_PAUSE_MS // 1000: start]) == {0xFF}
    again = synth.assemble(clips, PIPER)
    assert (again.key, again.url, again.source) == (one.key, one.url, "index")
    assert synth.assemble(clips[:1], PIPER) is clips[0]


def test_assemble_texts_assembles_only_what_is_already_published(tmp_path):
    provider = ToneProvider()
    synth = make_synth(tmp_path, {"piper": provider})
    pieces = split_pieces(BOOKING, "phrase")
    assert synth.assemble_texts(pieces, PIPER) is None  # nothing published yet: nothing synthesized either
    assert provider.calls == []
    clips = [synth.clip(p, PIPER) for p in pieces]
    one = synth.assemble_texts(pieces, PIPER)
    assert one is not None and one.key == assembled_key([c.key for c in clips], join_pauses(pieces), PIPER)
    assert len(provider.calls) == len(pieces)


def test_clips_in_a_fallback_voice_are_not_assembled(tmp_path):
    synth = make_synth(tmp_path, {"piper": ToneProvider()})
    a, b = synth.clip("Booked on~", PIPER), synth.clip("~Tuesday.", PIPER)
    with pytest.raises(ValueError):
        synth.assemble([a, dataclasses.replace(b, fallback=True)], PIPER)
    with pytest.raises(ValueError):
        synth.assemble([], PIPER)


# --- precompute and the live path key the same text the same way --------------------------------------
def test_precompute_plans_exactly_the_keys_the_live_path_asks_for(tmp_path):
    demo = load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")
    business = dataclasses.replace(demo, splice="phrase")
    plan = build_plan([business], None, fixed_only=True)
    planned = {item.key for item in plan.items}
    synth = make_synth(tmp_path, {"piper": ToneProvider()})
    for faq in business.faq:
        for piece in split_pieces(faq.answer, business.splice):  # what app.voice.turns does with a reply
            clip = synth.clip(piece, business.voice)
            assert clip.key in planned, piece
            assert clip.key == content_key(canon(piece), business.voice)
    assert {t for _, t in fixed_pieces(business)} >= {canon(p) for f in business.faq for p in split_pieces(f.answer, "phrase")}


# --- the live path serves a phrase-level answer as one assembled clip -------------------------------
def _phrase_app(make_app, tmp_path, responder, provider=None):
    toml = (ROOT / "businesses" / "businesses.toml").read_text()
    assert 'splice = "sentence"' in toml
    path = tmp_path / "businesses.toml"
    path.write_text(toml.replace('splice = "sentence"', 'splice = "phrase"'))
    app = make_app(runtime={"providers": {"piper": provider or ToneProvider()}, "responder": responder},
                   businesses=path, hop_s=0.5)
    return app


def test_a_cached_phrase_answer_is_one_assembled_play_per_sentence(make_app, tmp_path):
    from app.ids import new_call_sid
    from app.responders.base import Reply
    from tests.conftest import signed_post, twilio_form
    from tests.fakes import ScriptedResponder
    from tests.twiml_support import verbs

    app = _phrase_app(make_app, tmp_path, ScriptedResponder({"when?": Reply(BOOKING)}))
    try:
        synth = app.extensions["warmline"].synthesizer
        pieces = split_pieces(BOOKING, "phrase")
        clips = [synth.clip(p, PIPER) for p in pieces]  # precomputed, as the nightly job would
        call_sid = new_call_sid()
        client = app.test_client()
        signed_post(client, "/voice/incoming/demo", twilio_form(call_sid))
        body = signed_post(client, f"/voice/process/demo/{call_sid}",
                           twilio_form(call_sid, SpeechResult="when?", Confidence="0.9")).data
        doc = verbs(body)
        answer = doc[: [v[0] for v in doc].index("Gather")]  # what plays before the next <Gather>
        assert pieces[-1] == "Is that right?"  # a sentence of its own: its clip plays as it is
        expected = assembled_key([c.key for c in clips[:-1]], join_pauses(pieces[:-1]), PIPER)
        assert [v[0] for v in answer] == ["Play", "Play"], doc
        assert answer[0][2] == f"http://localhost/cdn/tts/v2/{PIPER.slug}/{expected[:2]}/{expected}.wav"
        assert synth.store.exists(f"tts/v2/{PIPER.slug}/{expected[:2]}/{expected}.wav")
        assert answer[1][2] == f"http://localhost/cdn/{clips[-1].name}"
        assert "~" not in body.decode()
    finally:
        app.extensions["warmline"].shutdown(wait=True)


def test_a_phrase_answer_that_cannot_be_synthesized_is_said_without_join_marks(make_app, tmp_path):
    from app.errors import SynthesisRejected
    from app.ids import new_call_sid
    from app.responders.base import Reply
    from tests.conftest import signed_post, twilio_form
    from tests.fakes import ScriptedResponder
    from tests.twiml_support import verbs

    app = _phrase_app(make_app, tmp_path, ScriptedResponder({"when?": Reply(BOOKING)}),
                      provider=ToneProvider(fail=SynthesisRejected("no voice today")))
    try:
        call_sid = new_call_sid()
        client = app.test_client()
        signed_post(client, "/voice/incoming/demo", twilio_form(call_sid))
        url = f"/voice/process/demo/{call_sid}"
        body = signed_post(client, url, twilio_form(call_sid, SpeechResult="when?", Confidence="0.9")).data
        for _ in range(12):  # follow the redirects until the turn is answered (bounded: deadline 8 s)
            doc = verbs(body)
            if doc[-1][0] != "Redirect":
                break
            body = signed_post(client, urlsplit(doc[-1][2]).path + "?" + urlsplit(doc[-1][2]).query,
                               twilio_form(call_sid)).data
        said = [v[2] for v in verbs(body) if v[0] == "Say"]
        # the pieces without a clip are said as one sentence run, without the join marks
        assert said[0] == BOOKING, said
    finally:
        app.extensions["warmline"].shutdown(wait=True)
