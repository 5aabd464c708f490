"""The Synthesizer: index hits are free, misses synthesize once, nothing invalid is published."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from app.errors import InvalidAudio, InvalidText, SynthesisRetryable
from app.speech.audio import finish_ulaw_wav
from app.speech.keys import content_key, object_name
from app.speech.providers.deepgram import DeepgramProvider
from app.speech.synthesizer import Synthesizer
from app.speech.voices import Voice
from app.speech.wav import parse_ulaw_wav
from cdn.index import KeyIndex
from cdn.local import LocalStore
from tests.conftest import ROOT
from tests.fakes import ToneProvider, tone_wav

PIPER = Voice("piper", "en_US-joe-medium")
AURA = Voice("deepgram", "aura-2-thalia-en")


def make_synth(tmp_path: Path, providers) -> Synthesizer:
    return Synthesizer(store=LocalStore(tmp_path / "cdn", "/cdn"), index=KeyIndex(tmp_path / "index"), providers=providers)


def test_miss_synthesizes_publishes_and_indexes(tmp_path):
    provider = ToneProvider()
    synth = make_synth(tmp_path, {"piper": provider})
    clip = synth.clip("We open at nine.", PIPER)
    key = content_key("we open at nine.", PIPER)
    assert (clip.key, clip.source, clip.hit) == (key, "synth", False)
    assert clip.url == "/cdn/" + object_name(key, PIPER)
    assert provider.calls == ["we open at nine."]
    assert synth.store.get(clip.name) == finish_ulaw_wav(tone_wav("we open at nine."))  # levelled, faded
    again = synth.clip("  We open at nine ", PIPER)
    assert (again.key, again.url, again.source) == (key, clip.url, "index")
    assert provider.calls == ["we open at nine."]


def test_index_hit_makes_no_http_request(tmp_path):
    requests: list[httpx.Request] = []

    def speak(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=tone_wav("x" * 20), headers={"dg-request-id": "r1"})

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"index hit made a request: {request.url}")

    warm = make_synth(tmp_path, {"deepgram": DeepgramProvider(client=httpx.Client(transport=httpx.MockTransport(speak)), api_key="k")})
    first = warm.clip("Is there anything else I can help you with?", AURA)
    assert len(requests) == 1 and first.source == "synth"
    cold = make_synth(tmp_path, {"deepgram": DeepgramProvider(client=httpx.Client(transport=httpx.MockTransport(refuse)), api_key="k")})
    hit = cold.clip("is there  anything else I can help you with?", AURA)
    assert (hit.url, hit.source) == (first.url, "index")
    assert len(requests) == 1


def test_one_provider_call_per_key_across_threads(tmp_path):
    provider = ToneProvider(delay_s=0.2)
    synth = make_synth(tmp_path, {"piper": provider})
    urls: list[str] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        urls.append(synth.clip("Your appointment is confirmed.", PIPER).url)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(provider.calls) == 1
    assert len(urls) == 8 and len(set(urls)) == 1


WORKER = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from app.speech.synthesizer import Synthesizer
    from app.speech.voices import Voice
    from cdn.index import KeyIndex
    from cdn.local import LocalStore
    from tests.fakes import ToneProvider
    tmp, start_at = Path(sys.argv[2]), float(sys.argv[3])
    synth = Synthesizer(store=LocalStore(tmp / "cdn", "/cdn"), index=KeyIndex(tmp / "index"),
                        providers={"piper": ToneProvider(delay_s=0.3, calls_file=tmp / "calls.txt")})
    urls = []
    def ask():
        time.sleep(max(0.0, start_at - time.time()))
        urls.append(synth.clip("See you on Tuesday.", Voice("piper", "en_US-joe-medium")).url)
    threads = [threading.Thread(target=ask) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(len(urls), len(set(urls)), urls[0])
    """
)


def test_one_provider_call_per_key_across_processes(tmp_path):
    import time

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    start_at = str(time.time() + 1.5)
    procs = [subprocess.Popen([sys.executable, str(script), str(ROOT), str(tmp_path), start_at], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert [o[:2] for o in outputs] == [["8", "1"], ["8", "1"]]
    assert outputs[0][2] == outputs[1][2]
    assert len((tmp_path / "calls.txt").read_text().splitlines()) == 1


def test_object_in_store_but_not_indexed_is_indexed_without_synthesis(tmp_path):
    provider = ToneProvider()
    synth = make_synth(tmp_path, {"piper": provider})
    key = content_key("Good morning.", PIPER)
    synth.store.put(object_name(key, PIPER), tone_wav("good morning."))
    clip = synth.clip("good morning", PIPER)
    assert (clip.source, provider.calls) == ("store", [])
    assert synth.index.get(key).url == clip.url


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>oops</html>", tone_wav("abc", rate=16000), tone_wav("abc")[:30], b"RIFF\x00\x00\x00\x00WAVEjunk"],
    ids=["empty", "html", "16k", "truncated-header", "garbage"],
)
def test_invalid_audio_is_never_published(tmp_path, body):
    class BadProvider(ToneProvider):
        def synthesize(self, text, voice):
            super().synthesize(text, voice)
            return body

    synth = make_synth(tmp_path, {"piper": BadProvider()})
    with pytest.raises(InvalidAudio):
        synth.clip("This will not be published.", PIPER)
    assert list(synth.store.list("tts/")) == []
    assert synth.index.keys() == []


def test_provider_failure_publishes_nothing(tmp_path):
    synth = make_synth(tmp_path, {"piper": ToneProvider(fail=SynthesisRetryable("503", status=503))})
    with pytest.raises(SynthesisRetryable):
        synth.clip("Hello there.", PIPER)
    assert list(synth.store.list("tts/")) == [] and synth.index.keys() == []


@pytest.mark.parametrize("text", ["", "   ", "!!! ...", "😀🎉", "—", "x" * 10_000],
                         ids=["empty", "blank", "punctuation", "emoji", "dash", "10000-chars"])
def test_unspeakable_or_oversized_text_is_refused_before_any_synthesis(tmp_path, text):
    provider = ToneProvider()
    synth = make_synth(tmp_path, {"piper": provider})
    with pytest.raises(InvalidText):
        synth.clip(text, PIPER)
    assert provider.calls == []


def test_index_unavailable_still_serves(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the index directory should be")
    provider = ToneProvider()
    synth = Synthesizer(store=LocalStore(tmp_path / "cdn", "/cdn"), index=KeyIndex(blocker / "index"), providers={"piper": provider})
    first = synth.clip("Thanks for waiting.", PIPER)
    second = synth.clip("Thanks for waiting.", PIPER)
    assert (first.source, second.source) == ("synth", "store")
    assert len(provider.calls) == 1


def test_speech_say_prints_key_url_duration_and_the_clip_is_served(app, runner, client):
    result = runner.invoke(args=["speech", "say", "We are open until six.", "--business", "demo"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.strip().splitlines())
    key = content_key("We are open until six.", PIPER)
    assert lines["key"] == key
    assert lines["url"] == "http://127.0.0.1:8000/cdn/" + object_name(key, PIPER)
    assert lines["source"] == "synth"
    response = client.get("/cdn/" + object_name(key, PIPER))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    wav = parse_ulaw_wav(response.data)
    response.close()
    assert (wav.sample_rate, wav.channels) == (8000, 1)
    assert float(lines["duration"].split()[0]) == pytest.approx(wav.duration_s, abs=0.001)


def test_speech_say_rejects_unknown_business_and_bad_text(runner):
    assert runner.invoke(args=["speech", "say", "hi", "--business", "nope"]).exit_code == 2
    bad = runner.invoke(args=["speech", "say", "!!!", "--business", "demo"])
    assert bad.exit_code == 1 and "nothing speakable" in bad.output


def test_reindex_rebuilds_the_index_from_the_store(app, runner):
    rt = app.extensions["warmline"]
    clip = rt.synthesizer.clip("Rebuild me.", PIPER)
    rt.index.clear()
    assert rt.index.get(clip.key) is None
    result = runner.invoke(args=["cdn", "reindex"])
    assert result.exit_code == 0 and "indexed 1 clips, 0 invalid" in result.output
    assert rt.index.get(clip.key).url == clip.url


def test_key_lock_excludes_others_and_dies_with_its_process(tmp_path):
    import signal
    import time

    index = KeyIndex(tmp_path / "index")
    key = "ab" * 32
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path.insert(0, sys.argv[1]); from cdn.index import KeyIndex; "
         "lock = KeyIndex(sys.argv[2]).key_lock(sys.argv[3]); lock.acquire(); print('held', flush=True); time.sleep(60)",
         str(ROOT), str(tmp_path / "index"), key],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert index.key_lock(key).acquire(timeout_s=0.2) is False
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        started = time.monotonic()
        lock = index.key_lock(key)
        assert lock.acquire(timeout_s=5) is True
        assert time.monotonic() - started < 1.0  # no expiry to wait out: the kernel released it
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.stdout.close()
