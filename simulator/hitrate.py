"""The cache hit rate a precompute plan mined from one corpus achieves on another.

    python -m simulator.hitrate --train FILE --test FILE --clips 5000 --splice slot [--json OUT]
    python -m simulator.hitrate --train ../shared/corpus/sgd-dev.jsonl --split 0.7 \\
        --clips 1000,5000,20000 --splice whole,sentence,clause,slot

Training: the agent turns of ``--train`` are mined exactly as ``flask precompute run
--from-corpus`` mines them (``precompute.mine.mine_corpus``: split into pieces as the live call
flow splits an answer, ``app.speech.pieces.split_pieces`` at the splice level with the corpus's
slot spans as the responder's marks, ``whole`` = one key per response; each piece counted once per
dialogue, with each turn's pieces kept for the plan's coverage ranking) and planned by
``precompute.plan.build_plan`` with a budget of ``--clips`` clips (mined pieces only: no
business's fixed phrases; ``slot`` and ``phrase`` add the common slot values as the plan does;
``--rank`` as the plan's, default ``turns``).
Testing: every agent turn of ``--test`` is split the same way and each piece looked up by its
canonical text (= its content key for one voice). Reported, as fractions:

    turns_full   turns whose every piece is cached (no synthesis, no filler needed)
    first_piece  turns whose first piece is cached (audio can start at once)
    chars        characters of all pieces that are cached (TTS spend avoided)

With ``--split F`` and no ``--test``, the first F of ``--train``'s dialogues (file order) train
and the rest test. Deterministic; single process; a few seconds per splice level.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.business import Business
from app.speech.voices import Voice
from precompute.mine import CorpusTurn, PieceCounts, agent_turns, coverage, mine_corpus, read_corpus, turn_pieces
from precompute.plan import RANKS, build_plan

LEVELS = ("whole", "sentence", "clause", "slot", "phrase")
BENCH_VOICE = Voice("deepgram", "aura-2-thalia-en")


@dataclass(frozen=True)
class HitRate:
    """One measurement; the three rates are fractions in [0, 1]."""

    splice: str
    clips: int
    rank: str
    min_count: int
    planned: int
    train_turns: int
    test_turns: int
    distinct_pieces: int
    turns_full: float
    first_piece: float
    chars: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _business(splice: str) -> Business:
    """A stand-in business carrying only what the mined part of a plan reads: voice and splice."""
    return Business(id="corpus", name="corpus", voice=BENCH_VOICE, say_voice="", language="en-US",
                    greeting="-", fillers=("-",), prompts={}, splice=splice)


def pieces_of(turns: Sequence[CorpusTurn], splice: str) -> list[list[str]]:
    """The canonical pieces of every turn at ``splice`` (turns with nothing speakable dropped)."""
    out = []
    for turn in turns:
        pieces = turn_pieces(turn, splice)
        if pieces:
            out.append(pieces)
    return out


def measure(
    train: list[list[str]] | PieceCounts, test: list[list[str]], *, splice: str, clips: int, rank: str = "turns",
    min_count: int = 1, train_turns: int | None = None,
) -> HitRate:
    """Plan ``clips`` clips from the ``train`` counts (or the pieces of each training turn, each
    counted once per turn); measure the ``test`` turns against them."""
    if isinstance(train, PieceCounts):
        counts = train
    else:
        counts = PieceCounts(p for pieces in train for p in pieces)
        counts.coverage = coverage([tuple(set(pieces)) for pieces in train], counts)
        train_turns = len(train)
    plan = build_plan([_business(splice)], lambda voice: counts, include_fixed=False, min_count=min_count,
                      max_clips=clips, rank=rank)
    cached = {item.text for item in plan.items}
    full = first = chars_hit = chars_all = 0
    for pieces in test:
        hits = [p in cached for p in pieces]
        full += all(hits)
        first += hits[0]
        chars_all += sum(len(p) for p in pieces)
        chars_hit += sum(len(p) for p, hit in zip(pieces, hits) if hit)
    n = max(1, len(test))
    return HitRate(
        splice=splice, clips=clips, rank=rank, min_count=min_count, planned=len(plan.items),
        train_turns=train_turns if train_turns is not None else len(train), test_turns=len(test),
        distinct_pieces=len(counts),
        turns_full=round(full / n, 4), first_piece=round(first / n, 4),
        chars=round(chars_hit / max(1, chars_all), 4),
    )


def load_split(train_path: Path, test_path: Path | None, split: float) -> tuple[list[CorpusTurn], list[CorpusTurn]]:
    train_dialogues = read_corpus(train_path)
    if test_path is not None:
        return list(agent_turns(train_dialogues)), list(agent_turns(read_corpus(test_path)))
    cut = int(len(train_dialogues) * split)
    return list(agent_turns(train_dialogues[:cut])), list(agent_turns(train_dialogues[cut:]))


def run(train_turns: list[CorpusTurn], test_turns: list[CorpusTurn], levels: Sequence[str], budgets: Sequence[int],
        *, rank: str = "turns", min_count: int = 1) -> list[HitRate]:
    results = []
    for level in levels:
        mined = mine_corpus(train_turns, level)
        train, test = mined.for_voice(None), pieces_of(test_turns, level)
        n_train = len(mined.turn_sets.get("", []))
        for clips in budgets:
            results.append(measure(train, test, splice=level, clips=clips, rank=rank, min_count=min_count,
                                   train_turns=n_train))
    return results


def _csv(kind, raw: str) -> list:
    return [kind(part) for part in raw.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.hitrate", description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="corpus JSONL the plan is mined from")
    parser.add_argument("--test", type=Path, help="corpus JSONL measured against the plan")
    parser.add_argument("--split", type=float, default=0.7, help="without --test: fraction of --train that trains")
    parser.add_argument("--clips", default="5000", help="clip budget(s), comma-separated")
    parser.add_argument("--splice", default="sentence", help=f"level(s), comma-separated, of {', '.join(LEVELS)}")
    parser.add_argument("--rank", default="turns", choices=RANKS)
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the result(s) as JSON here")
    args = parser.parse_args(argv)
    levels = _csv(str, args.splice)
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        parser.error(f"--splice: unknown level(s) {bad}; choose from {LEVELS}")
    budgets = _csv(int, args.clips)
    if not 0 < args.split < 1:
        parser.error("--split must be between 0 and 1")
    started = time.perf_counter()
    train_turns, test_turns = load_split(args.train, args.test, args.split)
    results = run(train_turns, test_turns, levels, budgets, rank=args.rank, min_count=args.min_count)
    print(f"train {len(train_turns)} agent turns, test {len(test_turns)} agent turns, "
          f"rank={args.rank}, min_count={args.min_count} ({time.perf_counter() - started:.1f} s)")
    print(f"{'splice':<9} {'clips':>6} {'planned':>7}  {'turns fully cached':>18}  {'first piece cached':>18}  "
          f"{'chars cached':>12}")
    for r in results:
        print(f"{r.splice:<9} {r.clips:>6} {r.planned:>7}  {r.turns_full:>18.1%}  {r.first_piece:>18.1%}  "
              f"{r.chars:>12.1%}")
    if args.json is not None:
        payload: dict[str, Any] = results[0].to_dict() if len(results) == 1 else {"results": [r.to_dict() for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
