"""LocalStore: names, create-only atomic publishing, audio validation, listing, disk errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.errors import InvalidAudio, InvalidObjectName, ObjectNotFound, StoreUnavailable
from app.speech.keys import content_key, object_name
from app.speech.voices import Voice
from app.speech.wav import ulaw_wav
from cdn.local import LocalStore
from cdn.store import (
    AUDIO_CONTENT_TYPE,
    EVENTS_CONTENT_TYPE,
    IMMUTABLE_CACHE_CONTROL,
    AudioStore,
    check_name,
    content_type,
    events_name,
)

VOICE = Voice("piper", "en_US-joe-medium")
BASE_URL = "http://127.0.0.1:8000/cdn/"


def clip_name(text: str, voice: Voice = VOICE) -> str:
    return object_name(content_key(text, voice), voice)


def clip(fill: int, samples: int = 800) -> bytes:
    """A valid 8 kHz mu-law WAV of ``samples`` samples, all ``fill``."""
    return ulaw_wav(bytes([fill]) * samples)


NAME = clip_name("Let me check that for you.")
KEY = NAME.rsplit("/", 1)[1][:-4]
EVENTS = "events/host-1/turns-2026-11-25.jsonl"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "cdn", BASE_URL)


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_constants() -> None:
    assert AUDIO_CONTENT_TYPE == "audio/wav"
    assert IMMUTABLE_CACHE_CONTROL == "public, max-age=31536000, immutable"


def test_local_store_satisfies_the_protocol(store: LocalStore) -> None:
    assert isinstance(store, AudioStore)


# --- names -----------------------------------------------------------------------------------

GOOD_NAMES = [
    NAME,
    "tts/v1/deepgram-aura-2-thalia-en/00/" + "0" * 64 + ".wav",
    "tts/v1/x/ab/ab" + "c" * 62 + ".wav",
    EVENTS,
    "events/a/turns-2024-02-29.jsonl",
    "events/" + "h" * 64 + "/turns-1999-12-31.jsonl",
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_check_name_accepts_both_families(name: str) -> None:
    assert check_name(name) == name


BAD_NAMES = [
    "",
    "/" + NAME,
    NAME + "/",
    "../" + NAME,
    NAME.replace("tts/v2/", "tts/v2/../v2/"),
    NAME.replace("tts/v2/", "tts//v2/"),
    NAME.replace("/", "\\"),
    NAME.replace("tts/v2/", "tts\\v2/"),
    NAME.replace("tts/v2/", "tts%2Fv2/"),
    NAME.replace("tts/v2/", "tts%2fv2/"),
    NAME.replace(".wav", "%2Ewav"),
    NAME + "\x00",
    NAME.replace(".wav", "\x00.wav"),
    NAME.replace(KEY, KEY.upper()),
    NAME.replace(KEY, KEY[:63]),
    NAME.replace(KEY, KEY + "0"),
    NAME.replace(".wav", ".mp3"),
    NAME + ".part",
    NAME + "\n",
    " " + NAME,
    NAME.replace("tts/v2/", "tts/v3/"),
    NAME.replace("tts/", "TTS/"),
    NAME.replace(f"/{KEY[:2]}/", "/zz/"),  # shard directory must be the key's first two hex digits
    NAME.replace(f"/{KEY[:2]}/", "/"),
    NAME.replace("piper-en_us-joe-medium", "Piper-en_us-joe-medium"),
    NAME.replace("piper-en_us-joe-medium", "."),
    NAME.replace("piper-en_us-joe-medium", ".."),
    NAME.replace("piper-en_us-joe-medium", "p\u00e9per"),
    "tts/v1/piper/" + KEY[:2] + "/.tmp-abc" + KEY + ".wav",
    "/etc/passwd",
    "..",
    ".",
    "events/host-1/turns-2026-13-01.jsonl",  # no 13th month
    "events/host-1/turns-2026-02-30.jsonl",
    "events/host-1/turns-26-11-25.jsonl",
    "events/Host-1/turns-2026-11-25.jsonl",
    "events/host_1/turns-2026-11-25.jsonl",
    "events/" + "h" * 65 + "/turns-2026-11-25.jsonl",
    "events//turns-2026-11-25.jsonl",
    "events/../turns-2026-11-25.jsonl",
    "events/host-1/turns-2026-11-25.json",
    "events/host-1/turns-2026-11-25.jsonl.gz",
    "events/host-1/sub/turns-2026-11-25.jsonl",
    "events/host-1/turns-\u0662\u0660\u0662\u0666-11-25.jsonl",  # Arabic-Indic digits are not [0-9]
    "other/" + NAME,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_check_name_rejects(name: str, store: LocalStore) -> None:
    with pytest.raises(InvalidObjectName):
        check_name(name)
    for call in (store.path, store.url, store.exists, store.get, store.delete):
        with pytest.raises(InvalidObjectName):
            call(name)
    with pytest.raises(InvalidObjectName):
        store.put(name, clip(0x7F))
    assert not store.root.exists()  # nothing was created for a refused name


@pytest.mark.parametrize("name", [None, b"tts/v1/x", 42, Path(NAME)])
def test_check_name_rejects_non_strings(name: object) -> None:
    with pytest.raises(InvalidObjectName):
        check_name(name)  # type: ignore[arg-type]


def test_events_name_builds_a_checked_name() -> None:
    assert events_name("host-1", dt.date(2026, 11, 25)) == EVENTS
    with pytest.raises(InvalidObjectName):
        events_name("../x", dt.date(2026, 11, 25))


def test_content_type_by_family() -> None:
    assert content_type(NAME) == "audio/wav"
    assert content_type(EVENTS) == "application/x-ndjson" == EVENTS_CONTENT_TYPE


def test_path_and_url(store: LocalStore, tmp_path: Path) -> None:
    assert store.path(NAME) == tmp_path / "cdn" / NAME
    assert store.url(NAME) == "http://127.0.0.1:8000/cdn/" + NAME
    assert LocalStore(tmp_path, "https://x.example/a///").url(EVENTS) == "https://x.example/a/" + EVENTS


# --- put / get --------------------------------------------------------------------------------


def test_put_get_exists_roundtrip(store: LocalStore) -> None:
    data = clip(0x55)
    assert not store.exists(NAME)
    assert store.put(NAME, data) == BASE_URL + NAME
    assert store.exists(NAME)
    assert store.get(NAME) == data
    assert store.path(NAME).read_bytes() == data
    assert files_under(store.root) == [NAME]
    assert store.path(NAME).stat().st_mode & 0o777 == 0o644


def test_put_is_create_only(store: LocalStore) -> None:
    first, second = clip(0x11), clip(0x22, samples=1600)
    url = store.put(NAME, first)
    assert store.put(NAME, second) == url
    assert store.get(NAME) == first
    assert files_under(store.root) == [NAME]


def test_put_events_file_is_not_audio_checked(store: LocalStore) -> None:
    line = b'{"v": 1, "turn": 1}\n'
    assert store.put(EVENTS, line) == BASE_URL + EVENTS
    assert store.get(EVENTS) == line


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a wav",
        clip(0x7F)[:20] + b"\x01\x00" + clip(0x7F)[22:],  # format code 1 (PCM), not 7 (mu-law)
        ulaw_wav(bytes(800), sample_rate=16000),
        ulaw_wav(b"\x7f"),  # far too short to be a clip
    ],
    ids=["empty", "garbage", "pcm", "16k", "too-short"],
)
def test_put_refuses_invalid_audio_and_writes_nothing(store: LocalStore, data: bytes) -> None:
    with pytest.raises(InvalidAudio):
        store.put(NAME, data)
    assert not store.exists(NAME)
    assert not store.root.exists()


def test_put_refuses_non_bytes(store: LocalStore) -> None:
    with pytest.raises(TypeError):
        store.put(EVENTS, "text")  # type: ignore[arg-type]


def test_get_missing_raises_object_not_found(store: LocalStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get(NAME)
    with pytest.raises(ObjectNotFound):
        store.delete(NAME)


def test_delete(store: LocalStore) -> None:
    store.put(NAME, clip(0x33))
    store.delete(NAME)
    assert not store.exists(NAME)
    with pytest.raises(ObjectNotFound):
        store.get(NAME)


def test_concurrent_puts_of_one_name_leave_one_complete_file(store: LocalStore) -> None:
    payloads = [clip(0x10 + i, samples=800 + 8 * i) for i in range(16)]
    barrier = threading.Barrier(16)

    def publish(data: bytes) -> str:
        barrier.wait(timeout=10)
        return store.put(NAME, data)

    with ThreadPoolExecutor(max_workers=16) as pool:
        urls = list(pool.map(publish, payloads, timeout=20))  # re-raises any worker's exception
    assert urls == [BASE_URL + NAME] * 16
    stored = store.get(NAME)
    assert stored in payloads  # exactly one writer's complete bytes, not a mix
    assert files_under(store.root) == [NAME]  # and no temp file left behind
    assert os.listdir(store.path(NAME).parent) == [NAME.rsplit("/", 1)[1]]


CHILD = """
import sys, time
from pathlib import Path
from cdn.local import LocalStore
root, go, name, path = sys.argv[1:5]
data = Path(path).read_bytes()
deadline = time.monotonic() + 20
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.001)
print(LocalStore(Path(root), "http://cdn.example").put(name, data))
"""


def test_concurrent_puts_across_processes(store: LocalStore, tmp_path: Path) -> None:
    payloads = [clip(0x40 + i, samples=800 + i) for i in range(4)]
    go = tmp_path / "go"
    procs = []
    for i, data in enumerate(payloads):
        path = tmp_path / f"payload-{i}.wav"
        path.write_bytes(data)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(store.root), str(go), NAME, str(path)],
                cwd=Path(__file__).resolve().parent.parent,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    go.write_text("go")
    outputs = [proc.communicate(timeout=30)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0]
    assert outputs == ["http://cdn.example/" + NAME + "\n"] * 4
    assert store.get(NAME) in payloads
    assert files_under(store.root) == [NAME]


# --- list ------------------------------------------------------------------------------------


def test_list_by_prefix(store: LocalStore) -> None:
    other_voice = Voice("deepgram", "aura-2-thalia-en")
    names = sorted(clip_name(t) for t in ("One.", "Two.", "Three."))
    other = clip_name("One.", other_voice)
    for name in [*names, other]:
        store.put(name, clip(0x44))
    store.put(EVENTS, b"{}\n")
    store.put("events/host-2/turns-2026-11-26.jsonl", b"{}\n")
    # strays a crash or an operator could leave: never listed
    stray_dir = store.path(names[0]).parent
    (stray_dir / ".tmp-abc.part").write_bytes(b"partial")
    (store.root / "README").write_text("x")

    assert sorted(store.list("tts/v2/piper-en_us-joe-medium/")) == names
    assert sorted(store.list("tts/")) == sorted([*names, other])
    assert sorted(store.list("")) == sorted([*names, other, EVENTS, "events/host-2/turns-2026-11-26.jsonl"])
    assert list(store.list("events/host-1/")) == [EVENTS]
    assert list(store.list("events/host-")) == [EVENTS, "events/host-2/turns-2026-11-26.jsonl"]
    assert list(store.list(names[0][:-10])) == [names[0]]
    assert list(store.list(names[0])) == [names[0]]
    assert list(store.list("tts/v1/nobody/")) == []
    assert list(store.list("../")) == []
    assert list(store.list("/etc/")) == []
    assert list(store.list("tts/../../")) == []


def test_list_of_an_empty_store(store: LocalStore) -> None:
    assert list(store.list("")) == []
    assert list(store.list("tts/v1/")) == []


# --- disk errors -----------------------------------------------------------------------------


@pytest.fixture
def broken_store(tmp_path: Path) -> LocalStore:
    """A store whose root is below a regular file: every directory operation fails (even as root)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    return LocalStore(blocker / "cdn", BASE_URL)


def test_disk_error_on_put_is_store_unavailable(broken_store: LocalStore) -> None:
    with pytest.raises(StoreUnavailable) as info:
        broken_store.put(NAME, clip(0x7F))
    assert isinstance(info.value.__cause__, NotADirectoryError)


def test_disk_error_on_get_is_store_unavailable(broken_store: LocalStore) -> None:
    with pytest.raises(StoreUnavailable):
        broken_store.get(NAME)


def test_disk_error_on_list_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "cdn" / "tts").mkdir(parents=True)
    (tmp_path / "cdn" / "tts" / "v1").write_text("a file where a directory should be")
    store = LocalStore(tmp_path / "cdn", BASE_URL)
    with pytest.raises(StoreUnavailable):
        list(store.list("tts/v1/piper/"))


def test_write_error_leaves_no_temp_file(tmp_path: Path) -> None:
    """A failure after the temp file exists (here: the final name is taken by a directory) cleans up."""
    store = LocalStore(tmp_path / "cdn", BASE_URL)
    store.path(NAME).mkdir(parents=True)
    with pytest.raises(StoreUnavailable):
        store.put(NAME, clip(0x7F))
    assert os.listdir(store.path(NAME).parent) == [NAME.rsplit("/", 1)[1]]
    assert files_under(store.root) == []
