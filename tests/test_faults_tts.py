"""Deepgram faults on a live call: the turn still plays, and nothing invalid is published or indexed.

A real gunicorn serves a business whose voice is Deepgram, pointed at the Deepgram emulator with
a fault plan per sentence; the AI is the LLM emulator (one sentence per turn, named after the
scenario). Retryable faults are retried within the turn's deadline, then the fallback voice
(Piper, the default chain) speaks, then ``<Say>``. After every test the store and the index are
audited: every object is a valid clip and no faulty response was published.
"""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest

from app.errors import BusinessConfigError
from app.speech.canon import canon
from app.speech.fallback import DEFAULT_FALLBACK, chain_for, parse_fallback
from app.speech.keys import content_key, object_name
from app.speech.voices import Voice
from simulator.llm_emulator import LLMEmulator
from tests.conftest import TWILIO_TOKEN, new_call_sid
from tests.faults_support import (
    Caller,
    ScriptedDeepgram,
    audit_index,
    audit_store,
    echo_responses,
    fetch_clip,
    listens,
    write_businesses,
)
from tests.server_support import GunicornServer

pytestmark = pytest.mark.slow
DG = Voice("deepgram", "aura-2-thalia-en")
PIPER = DEFAULT_FALLBACK
DEADLINE_S = 6.0
BOGUS = """
[bogus]
name = "Nobody's Voice"
greeting = "Hello."
fillers = ["One moment."]
instant_budget_ms = 200

[bogus.voice]
provider = "piper"
model = "en_US-amy-medium"

[bogus.say]
voice = "Polly.Joanna-Neural"
language = "en-US"
"""


def reply_for(scenario: str) -> str:
    return f"Here is the {scenario} answer."


def clip_url_name(url: str) -> str:
    return url.split("/cdn/", 1)[1]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tts-faults")
    from tests.faults_support import DG_BUSINESS

    businesses = write_businesses(tmp / "businesses.toml", DG_BUSINESS + BOGUS)
    with ScriptedDeepgram(ttfb_ms=20, per_char_ms=0.1, stall_ms=30_000) as dg, \
            LLMEmulator(responses=echo_responses) as llm:
        dg.render("Warm up.", {"encoding": "mulaw", "sample_rate": 8000, "speed": 1.0, "container": "wav"})
        env = {
            "WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "WARMLINE_BUSINESSES": str(businesses),
            "WARMLINE_DEEPGRAM_API_KEY": dg.api_key, "WARMLINE_DEEPGRAM_URL": dg.base_url,
            "WARMLINE_LLM_URL": llm.base_url, "WARMLINE_LLM_API_KEY": llm.api_key,
            "WARMLINE_TURN_DEADLINE_S": str(DEADLINE_S), "WARMLINE_HOP_S": "1.0",
        }
        with GunicornServer(tmp / "var", env=env, workers=2, threads=8) as server:
            for _ in range(2):  # both workers: the Deepgram client, the state and the index opened
                Caller(server.base_url, new_call_sid(), "dg").turn("warm up")
            yield SimpleNamespace(dg=dg, llm=llm, server=server, data=tmp / "var")


@pytest.fixture
def audited(rig):
    """After the test: every stored object is a valid clip; every index entry points at one."""
    yield rig
    names = audit_store(rig.data / "cdn")
    assert names, "nothing was published at all"
    audit_index(rig.data / "index", lambda name: (rig.data / "cdn" / name).read_bytes())


def answer_clip(rig, scenario: str) -> tuple[str, float]:
    """Play ``scenario`` as one call turn; return the answer's single clip URL and seconds to answer."""
    caller = Caller(rig.server.base_url, new_call_sid(), "dg")
    started = time.monotonic()
    turn = caller.turn(scenario)
    elapsed = time.monotonic() - started
    assert listens(turn.final), turn.final
    assert turn.says() == [], f"the answer fell back to <Say>: {turn.final}"
    key_names = {object_name(content_key(canon(reply_for(scenario)), v), v) for v in (DG, PIPER)}
    plays = [url for doc in turn.docs for v in doc if v[0] == "Play" for url in [v[2]]
             if clip_url_name(url) in key_names]
    assert len(plays) == 1, turn.docs
    assert fetch_clip(plays[0]) > 0.5
    return plays[0], elapsed


def dg_name(scenario: str) -> str:
    return object_name(content_key(canon(reply_for(scenario)), DG), DG)


def test_transient_5xx_is_retried_and_the_business_voice_plays(audited):
    rig = audited
    rig.dg.plan(reply_for("transient"), ["500", "503"])
    url, elapsed = answer_clip(rig, "transient")
    assert "/cdn/tts/v2/deepgram-aura-2-thalia-en/" in url
    assert rig.dg.seen[canon(reply_for("transient"))] == 3  # two failures, then the audio
    assert elapsed < DEADLINE_S


@pytest.mark.parametrize("mode", ["429", "500", "truncate", "garbage", "wrong_rate"])
def test_persistent_fault_retries_within_the_deadline_then_the_fallback_voice_plays(audited, mode):
    rig = audited
    scenario = f"{mode.replace('_', ' ')} storm"
    rig.dg.always(reply_for(scenario), mode)
    url, elapsed = answer_clip(rig, scenario)
    assert "/cdn/tts/v2/piper-en_us-joe-medium/" in url
    assert rig.dg.seen[canon(reply_for(scenario))] == 3  # the retry policy's three attempts, no more
    assert elapsed < DEADLINE_S
    assert not (rig.data / "cdn" / dg_name(scenario)).exists()  # the faulty bodies were never published


@pytest.mark.parametrize("mode", ["stall", "silent"])
def test_a_hung_response_is_abandoned_in_time_for_the_fallback_voice(audited, mode):
    """stall: headers and a first chunk, then nothing for 30 s. silent: no response at all (read timeout)."""
    rig = audited
    scenario = f"{mode} hang"
    rig.dg.always(reply_for(scenario), mode)
    url, elapsed = answer_clip(rig, scenario)
    assert "/cdn/tts/v2/piper-en_us-joe-medium/" in url
    assert rig.dg.seen[canon(reply_for(scenario))] == 1  # one attempt used the voice's whole budget
    assert elapsed < DEADLINE_S
    assert not (rig.data / "cdn" / dg_name(scenario)).exists()


def test_when_every_voice_fails_the_text_is_said(audited):
    """The end of the chain: a Piper voice the provider cannot speak has no fallback -> <Say>."""
    rig = audited
    caller = Caller(rig.server.base_url, new_call_sid(), "bogus")
    turn = caller.turn("nobody")
    assert turn.final[0][0] == "Say" and len(turn.final) == 6 and listens(turn.final), turn.final
    assert turn.final[0][2] == reply_for("nobody")
    assert turn.final[0][1] == {"voice": "Polly.Joanna-Neural", "language": "en-US"}


def test_connect_timeout_is_retried_within_the_deadline_then_the_fallback_voice_speaks(tmp_path):
    """A Deepgram address that never completes the TCP handshake (its accept queue is full): ConnectTimeout.

    The real Deepgram provider (pooled httpx client, 0.5 s connect timeout) and the real Piper voice.
    """
    from app.speech.providers.deepgram import DeepgramProvider, make_deepgram_client
    from app.speech.providers.piper import PiperProvider
    from app.speech.synthesizer import RetryPolicy, Synthesizer
    from cdn.index import KeyIndex
    from cdn.local import LocalStore

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    fillers: list[socket.socket] = []
    client = make_deepgram_client(connect_timeout=0.5)
    index = KeyIndex(tmp_path / "index")
    try:
        for _ in range(3):  # fill the accept queue: later SYNs are dropped, connect() hangs
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        piper = PiperProvider()
        piper.synthesize_pcm("Hello.")  # a worker warms its fallback voice after fork
        synth = Synthesizer(store=LocalStore(tmp_path / "cdn", "/cdn"), index=index,
                            providers={"deepgram": DeepgramProvider(client=client, api_key="k",
                                                                    base_url=f"http://127.0.0.1:{port}"),
                                       "piper": piper},
                            retry=RetryPolicy(attempts=5, base_s=0.05))
        started = time.time()
        clip = synth.clip(reply_for("blackhole"), DG, deadline=started + 4.0, fallbacks=(PIPER,))
        elapsed = time.time() - started
    finally:
        client.close()
        index.close()
        for s in fillers:
            s.close()
        hole.close()
    assert (clip.voice, clip.fallback, clip.source) == (PIPER.slug, True, "synth")
    assert clip.name == object_name(content_key(canon(reply_for("blackhole")), PIPER), PIPER)
    assert 1.5 <= elapsed < 4.0  # Deepgram had its 2.5 s (0.5 s connect attempts), Piper the rest
    assert audit_store(tmp_path / "cdn") == [clip.name]


# --- the fallback configuration (pure) ------------------------------------------------------------
def test_parse_fallback_reads_the_voice_table():
    assert parse_fallback("x", {"provider": "deepgram"}) is None
    assert parse_fallback("x", {"fallback": []}) == ()
    assert parse_fallback("x", {"fallback": [{"provider": "piper", "model": "en_US-joe-medium"},
                                             {"provider": "deepgram", "model": "aura-asteria-en", "speed": 1.1}]}) == (
        PIPER, Voice("deepgram", "aura-asteria-en", speed=1.1))


@pytest.mark.parametrize("raw, field", [
    ("piper", "voice.fallback"),
    ([{"provider": "polly", "model": "x"}], "voice.fallback[0].provider"),
    ([{"provider": "piper", "model": "../x"}], "voice.fallback[0].model"),
    ([{"provider": "piper", "model": "m", "speed": 9}], "voice.fallback[0].speed"),
    ([{"provider": "piper", "model": "m", "pitch": 1}], "voice.fallback[0].pitch"),
    ([{"provider": "piper", "model": "m"}] * 4, "voice.fallback"),
])
def test_parse_fallback_names_the_bad_field(raw, field):
    with pytest.raises(BusinessConfigError) as info:
        parse_fallback("acme", {"fallback": raw})
    assert info.value.field == field and info.value.business == "acme"


def test_chain_for_defaults_to_piper_for_network_voices_only():
    assert chain_for(SimpleNamespace(voice=DG, voice_fallbacks=None)) == (PIPER,)
    assert chain_for(SimpleNamespace(voice=PIPER, voice_fallbacks=None)) == ()
    assert chain_for(SimpleNamespace(voice=DG, voice_fallbacks=())) == ()
    other = Voice("deepgram", "aura-asteria-en")
    assert chain_for(SimpleNamespace(voice=DG, voice_fallbacks=(DG, other, other, PIPER))) == (other, PIPER)



def test_a_business_file_names_its_fallback_voices(tmp_path):
    """``[biz.voice] fallback = [...]`` reaches the turn's chain."""
    from app.business import load_businesses
    from tests.faults_support import DG_BUSINESS

    text = DG_BUSINESS.replace('model = "aura-2-thalia-en"\n', 'model = "aura-2-thalia-en"\n'
                               'fallback = [{provider = "deepgram", model = "aura-asteria-en"}]\n', 1)
    none = text.replace('[dg]', '[dg2]').replace('[dg.', '[dg2.').replace('+15005550007', '+15005550008') \
        .replace('fallback = [{provider = "deepgram", model = "aura-asteria-en"}]', 'fallback = []')
    businesses = load_businesses(write_businesses(tmp_path / "b.toml", text + none))
    assert chain_for(businesses.get("dg")) == (Voice("deepgram", "aura-asteria-en"),)
    assert chain_for(businesses.get("dg2")) == ()
    with pytest.raises(BusinessConfigError) as info:
        load_businesses(write_businesses(tmp_path / "bad.toml", text.replace('"aura-asteria-en"', '"../x"')))
    assert info.value.field == "voice.fallback[0].model"


def test_a_cleanly_ended_but_truncated_wav_is_never_published(tmp_path):
    """A proxy that cuts the body yet ends the HTTP message cleanly (exact Content-Length): the WAV's own
    sizes give it away; every attempt is refused as InvalidAudio and nothing is published or indexed."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    from app.errors import InvalidAudio
    from app.speech.providers.deepgram import DeepgramProvider
    from app.speech.synthesizer import RetryPolicy, Synthesizer
    from app.speech.wav import ulaw_wav
    from cdn.index import KeyIndex
    from cdn.local import LocalStore

    cut = ulaw_wav(bytes([0x55]) * 16000)[:8029]
    requests = []

    class Cutting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            requests.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(cut)))
            self.end_headers()
            self.wfile.write(cut)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Cutting)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    client = httpx.Client()
    index = KeyIndex(tmp_path / "index")
    try:
        synth = Synthesizer(store=LocalStore(tmp_path / "cdn", "/cdn"), index=index, retry=RetryPolicy(base_s=0.01),
                            providers={"deepgram": DeepgramProvider(
                                client=client, api_key="k", base_url=f"http://127.0.0.1:{server.server_address[1]}")})
        with pytest.raises(InvalidAudio, match="truncated"):
            synth.clip(reply_for("cut"), DG, deadline=time.time() + 3.0)
        assert len(requests) == 3
        assert index.keys() == [] and audit_store(tmp_path / "cdn") == []
    finally:
        client.close()
        index.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
