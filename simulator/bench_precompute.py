"""Precompute throughput against the Deepgram emulator: sentences per second as a ratio of the ideal.

    python -m simulator.bench_precompute [--sentences 600] [--limit 15] [--ttfb-ms 150] [--per-char-ms 1]
                                         [--corpus ../shared/corpus/sgd-dev.jsonl] [--json OUT]

The emulator (in this process, on loopback) admits ``--limit`` concurrent requests (more get 429)
and answers each after ``ttfb_ms + per_char_ms * len(text)``; it speaks with a tone so that its
own CPU time stays out of the measurement (``--piper`` to speak with the local voice instead).
The runner publishes the sentences (distinct agent sentences of the corpus, in file order)
through the real Synthesizer, DeepgramProvider (pooled httpx), LocalStore and key index in a
temporary directory, with its pool sized by ``DeepgramProvider.max_concurrency``.

    ideal sentences/s = limit / mean latency        (every slot of the limit always busy)
    ratio             = measured sentences/s / ideal
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from app.speech.canon import canon
from app.speech.providers.deepgram import DeepgramProvider, make_deepgram_client
from app.speech.segment import split_sentences
from app.speech.synthesizer import Synthesizer
from app.speech.voices import Voice
from cdn.index import KeyIndex
from cdn.local import LocalStore
from precompute.mine import agent_turns, read_corpus
from precompute.plan import PlanItem
from precompute.runner import run_plan
from simulator.deepgram_emulator import DeepgramEmulator

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "sgd-dev.jsonl"
VOICE = Voice("deepgram", "aura-2-thalia-en")


class ToneSpeaker:
    """A 22.05 kHz tone, 60 ms a character: audio of a realistic size at no CPU cost. Thread-safe."""

    def synthesize_pcm(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
        rate = 22050
        n = max(int(rate * 0.3), int(rate * 0.06 * len(text)))
        return (6000 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.int16), rate


def sentences(corpus: Path, n: int) -> list[str]:
    """The first ``n`` distinct (by canon) agent sentences of ``corpus``."""
    seen: set[str] = set()
    out: list[str] = []
    for turn in agent_turns(read_corpus(corpus)):
        for sentence in split_sentences(turn.text):
            spoken = canon(sentence)
            if spoken and spoken not in seen and any(c.isalnum() for c in spoken):
                seen.add(spoken)
                out.append(spoken)
                if len(out) == n:
                    return out
    return out


def bench(texts: list[str], *, limit: int, ttfb_ms: float, per_char_ms: float, piper: bool, data_dir: Path) -> dict:
    speaker = None if piper else ToneSpeaker()
    with DeepgramEmulator(concurrency_limit=limit, ttfb_ms=ttfb_ms, per_char_ms=per_char_ms, speaker=speaker) as emu:
        client = make_deepgram_client()
        try:
            provider = DeepgramProvider(client=client, api_key=emu.api_key, base_url=emu.base_url)
            synthesizer = Synthesizer(store=LocalStore(data_dir / "cdn", "/cdn"), index=KeyIndex(data_dir / "index"),
                                      providers={"deepgram": provider})
            from app.speech.keys import content_key

            items = [PlanItem("bench", VOICE, "mined", t, content_key(t, VOICE), 1) for t in texts]
            if piper:  # warm the emulator's voice so its load time is not measured
                emu._pcm("Warming up.")
            summary = run_plan(items, synthesizer)
            stats = emu.stats()
        finally:
            client.close()
    mean_latency_s = (ttfb_ms + per_char_ms * float(np.mean([len(t) for t in texts]))) / 1000.0
    ideal = limit / mean_latency_s
    measured = summary.new / summary.seconds if summary.seconds else 0.0
    return {
        "sentences": len(texts), "new": summary.new, "failed": summary.failed, "retries": summary.retries,
        "seconds": round(summary.seconds, 3), "sentences_per_s": round(measured, 2),
        "ideal_per_s": round(ideal, 2), "ratio": round(measured / ideal, 3),
        "limit": limit, "ttfb_ms": ttfb_ms, "per_char_ms": per_char_ms,
        "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "max_in_flight": stats["max_in_flight"], "emulator_429": stats["by_status"].get("429", 0),
        "speaker": "piper" if piper else "tone",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.bench_precompute", description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=600)
    parser.add_argument("--limit", type=int, default=15, help="the emulator's concurrency limit")
    parser.add_argument("--ttfb-ms", type=float, default=150.0)
    parser.add_argument("--per-char-ms", type=float, default=1.0)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--piper", action="store_true", help="the emulator speaks with Piper (CPU-bound here)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    texts = sentences(args.corpus, args.sentences)
    with tempfile.TemporaryDirectory(prefix="bench-precompute-") as tmp:
        result = bench(texts, limit=args.limit, ttfb_ms=args.ttfb_ms, per_char_ms=args.per_char_ms,
                       piper=args.piper, data_dir=Path(tmp))
    print(f"{result['new']} of {result['sentences']} sentences in {result['seconds']:.2f} s "
          f"({result['failed']} failed, {result['retries']} retries): {result['sentences_per_s']:.1f}/s; "
          f"ideal {result['ideal_per_s']:.1f}/s (limit {args.limit} / mean latency "
          f"{args.ttfb_ms + args.per_char_ms * result['mean_chars']:.0f} ms); ratio {result['ratio']:.2f}; "
          f"max in flight {result['max_in_flight']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
