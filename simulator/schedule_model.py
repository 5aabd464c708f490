"""What Twilio's uninterruptible ``<Play>`` costs the answer, in a model of one turn at a 0 ms end of speech.

    python -m simulator.schedule_model                 # the benchmark's latency model, 20,000 turns
    python -m simulator.schedule_model --cached 0.2 --window-ms 434
    python -m simulator.schedule_model --filler-ms 1200 --apply-ms 300 --margin-ms 500

No servers: the benchmark's latency model (``simulator.bench.BenchConfig`` defaults) applied to the
held-out corpus replies, and three ways of serving each turn's answer, side by side on the same draws:

- **control**: the whole reply, then its clip, then the upload, then Twilio's first fetch;
- **Warmline's schedule**: the first piece (the first sentence as the stream cuts it, or its opening
  clause with ``early_clause``) is ready when its text is written plus its clip; meanwhile the caller
  hears a filler of ``--filler-ms``, and each hop waits the silence budget (``--window-ms``) and
  bridges with the same phrase -- :func:`app.voice.fillers.answer_start_s`, the schedule the filler
  choice plans with; an answer ready while a phrase plays waits for its end;
- **interrupt**: Warmline's schedule, but an answer that becomes ready while a phrase still has more
  than ``--margin-ms`` to play cuts it: Twilio's REST "update a call in progress" (``Url`` = the next
  hop) takes ``--apply-ms`` to stop the phrase (the REST round trip and Twilio's own delay, which
  Twilio does not publish), then the hop runs as usual (:func:`interrupted_start_s`). Not built in
  the product: this arm says what it would buy;
- **oracle**: the answer plays the instant its first piece is ready (what interrupting the filler at
  no cost would give).

Every arm then adds Twilio's half round trip and the first fetch. ``--cached`` is the share of turns
whose first piece is already a clip (ready when its text is). The point is the gap between the
schedule and the oracle (what no serving change inside Twilio's model can recover) and the oracle
against control (the floor of the ratio at this latency model). A model, not a measurement: the
benchmark (``python -m simulator bench``) measures; this explains.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from app.responders.stream import SentenceCutter
from app.voice.fillers import answer_start_s
from simulator.bench import CORPUS, BenchConfig, replies, split_corpus
from simulator.llm_emulator import tokens


@dataclass(frozen=True)
class Model:
    """The knobs (seconds unless named). Defaults: the benchmark's latency model and the product's budget."""

    ai_min_s: float = BenchConfig.ai_min_ms / 1000
    ai_max_s: float = BenchConfig.ai_max_ms / 1000
    ttft_share: float = BenchConfig.ttft_share
    tts_ttfb_s: float = BenchConfig.deepgram_ttfb_ms / 1000
    tts_per_char_s: float = BenchConfig.deepgram_per_char_ms / 1000
    tts_jitter_s: float = BenchConfig.deepgram_jitter_ms / 1000
    upload_s: float = BenchConfig.upload_ms / 1000
    rtt_s: float = BenchConfig.rtt_ms / 1000
    fetch_s: float = BenchConfig.media_fetch_ms / 1000
    process_s: float = 0.09  # the process webhook's answer (filler) after the final result
    filler_s: float = 0.37  # "Sure." as the benchmark's voice says it
    window_s: float = 0.434  # the hop's wait in silence (the silence budget as the benchmark sees it)
    cached: float = 0.2
    early_clause: bool = True
    apply_s: float = 0.3  # a REST call update's round trip plus Twilio's delay in cutting the <Play> (unpublished)
    margin_s: float = 0.5  # interrupt only a phrase with more than this left to play (else its own redirect is sooner)


def first_unit(reply: str, early_clause: bool) -> tuple[str, float]:
    """(the first piece the stream hands out, the share of the reply's tokens written by then)."""
    cutter = SentenceCutter(early_clause=early_clause)
    toks = tokens(reply)
    for i, tok in enumerate(toks):
        out = cutter.feed(tok)
        if out:
            return out[0], (i + 1) / len(toks)
    rest = cutter.finish()
    return (rest[0] if rest else reply), 1.0


def interrupted_start_s(ready_s: float, elapsed_s: float, first_s: float, bridge_s: float, window_s: float,
                        overhead_s: float, apply_s: float, margin_s: float) -> float:
    """:func:`~app.voice.fillers.answer_start_s` with the phrase cut by a REST call update once the answer is
    ready: a phrase with more than ``margin_s`` left stops ``apply_s`` after the answer is ready, and
    Twilio's request for the next hop reaches the server ``overhead_s`` after that."""
    start, length = elapsed_s, first_s
    while True:
        end = start + length
        hop = end + overhead_s
        if ready_s <= hop:
            if start <= ready_s and end - ready_s > margin_s:
                return min(hop, ready_s + apply_s + overhead_s)
            return hop
        if ready_s <= hop + window_s:
            return ready_s
        start, length = hop + window_s, bridge_s


def simulate(answers: Sequence[str], model: Model, *, n: int, seed: int) -> dict[str, list[float]]:
    """Seconds from the end of the caller's speech to the answer's first audio, per arm, for ``n`` draws.

    Times are counted from the end of speech. A webhook reaches the server half a round trip after
    Twilio sends it and its answer reaches Twilio half a round trip after the server sends it; the
    turn's job starts when the final result reaches the server.
    """
    rng = random.Random(seed)
    half = model.rtt_s / 2
    out: dict[str, list[float]] = {"control": [], "schedule": [], "interrupt": [], "oracle": []}
    for _ in range(n):
        reply = rng.choice(answers)
        ai = rng.uniform(model.ai_min_s, model.ai_max_s)
        unit, share = first_unit(reply, model.early_clause)
        written = ai * model.ttft_share + ai * (1 - model.ttft_share) * share
        clip = model.tts_ttfb_s + model.tts_per_char_s * len(unit) + rng.uniform(0, model.tts_jitter_s)
        ready = half + (written if rng.random() < model.cached else written + clip)  # at the server
        heard = half + model.fetch_s  # from the server's answer to the first audio
        whole = model.tts_ttfb_s + model.tts_per_char_s * len(reply) + rng.uniform(0, model.tts_jitter_s)
        out["control"].append(half + ai + whole + model.upload_s + heard)
        # the filler plays from process_s; each hop reaches the server half a round trip after a phrase ends
        out["schedule"].append(answer_start_s(ready, model.process_s, model.filler_s, model.filler_s,
                                              model.window_s, half) + heard)
        out["interrupt"].append(interrupted_start_s(ready, model.process_s, model.filler_s, model.filler_s,
                                                    model.window_s, half, model.apply_s, model.margin_s) + heard)
        out["oracle"].append(max(ready, half) + heard)
    return out


def _q(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summary(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base = times["control"]
    return {arm: {"p50": round(_q(xs, 0.5), 3), "p95": round(_q(xs, 0.95), 3),
                  "ratio_p50": round(_q(xs, 0.5) / _q(base, 0.5), 3), "ratio_p95": round(_q(xs, 0.95) / _q(base, 0.95), 3)}
            for arm, xs in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulator.schedule_model", description=__doc__.split("\n")[0])
    p.add_argument("--turns", type=int, default=20_000)
    p.add_argument("--cached", type=float, default=Model.cached, help="share of first pieces already a clip")
    p.add_argument("--window-ms", type=float, default=Model.window_s * 1000)
    p.add_argument("--filler-ms", type=float, default=Model.filler_s * 1000)
    p.add_argument("--apply-ms", type=float, default=Model.apply_s * 1000,
                   help="interrupt arm: REST round trip plus Twilio's delay in cutting the phrase")
    p.add_argument("--margin-ms", type=float, default=Model.margin_s * 1000,
                   help="interrupt arm: cut only a phrase with more than this left")
    p.add_argument("--no-early-clause", action="store_true")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    a = p.parse_args(argv)
    model = Model(cached=a.cached, window_s=a.window_ms / 1000, filler_s=a.filler_ms / 1000,
                  early_clause=not a.no_early_clause, apply_s=a.apply_ms / 1000, margin_s=a.margin_ms / 1000)
    _, test = split_corpus(CORPUS, 0.7)
    answers = [r for d in test for r in (replies(d) or []) if r.strip()]
    result = summary(simulate(answers, model, n=a.turns, seed=a.seed))
    if a.json:
        json.dump({"model": model.__dict__, "turns": a.turns, "arms": result}, sys.stdout, indent=2)
        print()
        return 0
    print(f"{a.turns} turns, {len(answers)} held-out replies; {model}")
    for arm, s in result.items():
        print(f"  {arm:9s} p50 {s['p50']:.3f} s  p95 {s['p95']:.3f} s   x control: {s['ratio_p50']:.3f} / {s['ratio_p95']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
