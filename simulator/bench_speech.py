"""The speech layer benchmark: what a hit costs, what a miss costs, side by side in one run.

    python -m simulator.bench_speech [--hits 20000] [--texts 30] [--dg-ttfb-ms 200] [--dg-per-char-ms 1.0]

Prints, in one run on one machine:
- index-hit ``Synthesizer.clip()`` latency vs a bare ``diskcache`` get of the same entry (the ratio is
  the overhead of canon + key + entry decoding on top of the disk lookup);
- Piper's real-time factor (synthesis seconds per second of audio, 8 kHz mu-law output included);
- an emulated-Deepgram miss: ``clip()`` of a new sentence through the pooled httpx client against the
  Deepgram emulator (its latency model: time to first byte + per character), publish and index included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import diskcache

from app.speech.providers.deepgram import DeepgramProvider, make_deepgram_client
from app.speech.providers.piper import PiperProvider
from app.speech.synthesizer import Synthesizer
from app.speech.voices import Voice
from app.speech.wav import wav_duration_s
from cdn.index import KeyIndex
from cdn.local import LocalStore
from simulator.deepgram_emulator import DeepgramEmulator

SENTENCES = [
    "Thanks for calling, how can I help you today?",
    "We're open Monday to Friday from eight to six.",
    "Is there anything else I can help you with?",
    "Your appointment is confirmed for Tuesday at three in the afternoon.",
    "There's free parking behind the building.",
    "A check-up and clean is one hundred and twenty dollars.",
    "Let me check that for you.",
    "I'm sorry, could you say that again?",
]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def run(hits: int, texts: int, dg_ttfb_ms: float, dg_per_char_ms: float) -> dict:
    piper_voice = Voice("piper", "en_US-joe-medium")
    aura = Voice("deepgram", "aura-2-thalia-en")
    piper = PiperProvider()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index = KeyIndex(root / "index")
        synth = Synthesizer(store=LocalStore(root / "cdn", "/cdn"), index=index, providers={"piper": piper})
        # Piper: real-time factor over distinct sentences (first load excluded).
        piper.synthesize_pcm("Warm up.")
        synth_s = audio_s = 0.0
        sentences = [f"{s} Number {i}." for i, s in enumerate(SENTENCES * (texts // len(SENTENCES) + 1))][:texts]
        for text in sentences:
            started = time.perf_counter()
            data = piper.synthesize(text, piper_voice)
            synth_s += time.perf_counter() - started
            audio_s += wav_duration_s(data)
        # Index hits vs a bare diskcache get of the same entries.
        for text in SENTENCES:
            synth.clip(text, piper_voice)
        raw = diskcache.Cache(str(root / "index"))
        keys = [("clip", synth.lookup(t, piper_voice).key) for t in SENTENCES]
        clip_us, raw_us = [], []
        for i in range(hits):
            text, key = SENTENCES[i % len(SENTENCES)], keys[i % len(keys)]
            t0 = time.perf_counter()
            clip = synth.clip(text, piper_voice)
            t1 = time.perf_counter()
            entry = raw.get(key)
            t2 = time.perf_counter()
            assert clip.source == "index" and entry is not None
            clip_us.append((t1 - t0) * 1e6)
            raw_us.append((t2 - t1) * 1e6)
        raw.close()
        # Emulated Deepgram misses.
        miss_ms = []
        with DeepgramEmulator(ttfb_ms=dg_ttfb_ms, per_char_ms=dg_per_char_ms, speaker=piper) as emulator:
            dg = DeepgramProvider(client=make_deepgram_client(), api_key=emulator.api_key, base_url=emulator.base_url)
            dsynth = Synthesizer(store=LocalStore(root / "cdn", "/cdn"), index=index, providers={"deepgram": dg})
            for i, text in enumerate(SENTENCES):
                t0 = time.perf_counter()
                clip = dsynth.clip(f"{text} Deepgram {i}.", aura)
                miss_ms.append((time.perf_counter() - t0) * 1000)
                assert clip.source == "synth"
    return {
        "hits": hits,
        "clip_hit_us_p50": round(statistics.median(clip_us), 1),
        "clip_hit_us_p95": round(pct(clip_us, 95), 1),
        "diskcache_get_us_p50": round(statistics.median(raw_us), 1),
        "hit_overhead_ratio": round(statistics.median(clip_us) / statistics.median(raw_us), 2),
        "piper_sentences": texts,
        "piper_audio_s": round(audio_s, 2),
        "piper_synth_s": round(synth_s, 3),
        "piper_rtf": round(synth_s / audio_s, 4),
        "deepgram_miss_ms_p50": round(statistics.median(miss_ms), 1),
        "deepgram_miss_ms_max": round(max(miss_ms), 1),
        "deepgram_model": f"ttfb {dg_ttfb_ms} ms + {dg_per_char_ms} ms/char",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.bench_speech", description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=20_000)
    parser.add_argument("--texts", type=int, default=30)
    parser.add_argument("--dg-ttfb-ms", type=float, default=200.0)
    parser.add_argument("--dg-per-char-ms", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.hits, args.texts, args.dg_ttfb_ms, args.dg_per_char_ms)
    width = max(map(len, result))
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
