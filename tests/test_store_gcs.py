"""GCSStore against a real gcp-storage-emulator process, and create-only/retry/error semantics
against a fake at the HTTP transport (the emulator ignores ifGenerationMatch)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from google.cloud import storage

from app.errors import ConfigError, InvalidAudio, InvalidObjectName, ObjectNotFound, StoreUnavailable
from app.speech.keys import content_key, object_name
from app.speech.voices import Voice
from app.speech.wav import ulaw_wav
from cdn.gcs import GCSStore, make_gcs_client, normalize_prefix
from cdn.store import AudioStore
from tests.gcs_support import (
    FakeGCS,
    FakeResponse,
    Recorded,
    emulator_admin_client,
    fake_client,
    gcs_error,
    object_resource,
    running_emulator,
)

VOICE = Voice("piper", "en_US-joe-medium")
NAME = object_name(content_key("Let me check that for you.", VOICE), VOICE)
EVENTS = "events/host-1/turns-2026-11-25.jsonl"
DATA = ulaw_wav(bytes(range(256)) * 4)


def clip_name(text: str) -> str:
    return object_name(content_key(text, VOICE), VOICE)


# --- against the emulator (a real process: marked slow) ---------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with running_emulator() as url:
        yield url


@pytest.fixture
def bucket(emulator: str) -> str:
    name = f"warmline-test-{uuid.uuid4().hex[:12]}"
    emulator_admin_client(emulator).create_bucket(name)
    return name


@pytest.fixture
def client(emulator: str, monkeypatch: pytest.MonkeyPatch) -> storage.Client:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    return make_gcs_client()


@pytest.mark.slow
def test_make_gcs_client_targets_the_emulator(client: storage.Client, emulator: str) -> None:
    assert client.project == "warmline-emulator"
    assert client._connection.API_BASE_URL == emulator


@pytest.mark.slow
def test_gcs_store_satisfies_the_protocol(client: storage.Client, bucket: str) -> None:
    assert isinstance(GCSStore(bucket=bucket, client=client), AudioStore)


@pytest.mark.slow
def test_put_exists_get_url(client: storage.Client, bucket: str) -> None:
    store = GCSStore(bucket=bucket, client=client)
    assert not store.exists(NAME)
    url = store.put(NAME, DATA)
    assert url == f"https://storage.googleapis.com/{bucket}/{NAME}"
    assert store.exists(NAME)
    assert store.get(NAME) == DATA


@pytest.mark.slow
def test_object_metadata_is_stored(client: storage.Client, bucket: str) -> None:
    store = GCSStore(bucket=bucket, prefix="prod", client=client)
    store.put(NAME, DATA)
    store.put(EVENTS, b'{"v": 1}\n')
    audio = client.bucket(bucket).blob("prod/" + NAME)
    audio.reload()
    assert audio.content_type == "audio/wav"
    assert audio.cache_control == "public, max-age=31536000, immutable"
    assert audio.size == len(DATA)
    events = client.bucket(bucket).blob("prod/" + EVENTS)
    events.reload()
    assert events.content_type == "application/x-ndjson"
    assert events.cache_control == "public, max-age=31536000, immutable"


@pytest.mark.slow
@pytest.mark.parametrize("prefix", ["warmline/prod", "/warmline/prod/", "warmline/prod/"])
def test_prefix_is_joined_with_one_slash(client: storage.Client, bucket: str, prefix: str) -> None:
    store = GCSStore(bucket=bucket, prefix=prefix, client=client, cdn_base_url="https://audio.example.com/")
    assert store.put(NAME, DATA) == f"https://audio.example.com/warmline/prod/{NAME}"
    assert [b.name for b in client.list_blobs(bucket)] == [f"warmline/prod/{NAME}"]
    assert store.get(NAME) == DATA
    assert list(store.list("tts/")) == [NAME]


@pytest.mark.slow
def test_list_strips_the_prefix_and_filters_by_name_prefix(client: storage.Client, bucket: str) -> None:
    store = GCSStore(bucket=bucket, prefix="p", client=client)
    names = sorted(clip_name(t) for t in ("One.", "Two.", "Three."))
    for name in names:
        store.put(name, DATA)
    store.put(EVENTS, b"{}\n")
    # neighbours a naive prefix match would pick up, and a stray object under our prefix
    GCSStore(bucket=bucket, prefix="pp", client=client).put(names[0], DATA)
    GCSStore(bucket=bucket, client=client).put(names[1], DATA)
    client.bucket(bucket).blob("p/tts/v1/notes.txt").upload_from_string(b"x")

    assert list(store.list("tts/")) == names
    assert list(store.list("events/")) == [EVENTS]
    assert list(store.list("")) == sorted([*names, EVENTS])
    assert list(store.list(names[2][:-8])) == [names[2]]
    assert list(store.list("tts/v1/nobody/")) == []
    assert list(GCSStore(bucket=bucket, client=client).list("tts/")) == [names[1]]


@pytest.mark.slow
def test_get_and_delete_missing_raise_object_not_found(client: storage.Client, bucket: str) -> None:
    store = GCSStore(bucket=bucket, client=client)
    with pytest.raises(ObjectNotFound):
        store.get(NAME)
    with pytest.raises(ObjectNotFound):
        store.delete(NAME)


@pytest.mark.slow
def test_delete(client: storage.Client, bucket: str) -> None:
    store = GCSStore(bucket=bucket, client=client)
    store.put(NAME, DATA)
    store.delete(NAME)
    assert not store.exists(NAME)


@pytest.mark.slow
def test_invalid_audio_is_not_uploaded(client: storage.Client, bucket: str) -> None:
    store = GCSStore(bucket=bucket, client=client)
    with pytest.raises(InvalidAudio):
        store.put(NAME, b"RIFF....WAVEnope")
    assert list(client.list_blobs(bucket)) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["../" + NAME, "/" + NAME, NAME.replace("/", "%2F"), "tts//v1/x.wav", "a\\b"])
def test_invalid_names_are_refused_before_any_request(client: storage.Client, bucket: str, name: str) -> None:
    store = GCSStore(bucket=bucket, client=client)
    for call in (store.url, store.exists, store.get, store.delete):
        with pytest.raises(InvalidObjectName):
            call(name)
    with pytest.raises(InvalidObjectName):
        store.put(name, DATA)
    assert list(client.list_blobs(bucket)) == []


@pytest.mark.slow
def test_missing_bucket_is_store_unavailable(client: storage.Client) -> None:
    store = GCSStore(bucket="no-such-bucket-here", client=client, retry_deadline_s=1.0)
    with pytest.raises(StoreUnavailable):
        store.put(NAME, DATA)


@pytest.mark.slow
def test_stopped_emulator_is_store_unavailable_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_emulator() as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        client = make_gcs_client()
        emulator_admin_client(url).create_bucket("warmline-doomed")
        store = GCSStore(bucket="warmline-doomed", client=client, retry_deadline_s=1.0, timeout_s=2.0)
        store.put(NAME, DATA)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.put(clip_name("Another."), DATA)
    with pytest.raises(StoreUnavailable):
        store.exists(NAME)
    with pytest.raises(StoreUnavailable):
        store.get(NAME)
    with pytest.raises(StoreUnavailable):
        list(store.list(""))
    assert time.monotonic() - started < 10.0  # four calls, each bounded by the 1 s retry deadline


# --- at the transport boundary ----------------------------------------------------------------

BUCKET = "warmline-audio"
OBJECT_PATH = "/storage/v1/b/{bucket}/o/{name}"

# The client also fires, from a background thread, one bucket-metadata GET per bucket (for its
# OpenTelemetry attributes; off with DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA=true). The
# handlers below answer it 403 and the assertions count only the requests under test.


def is_upload(request: Recorded) -> bool:
    return request.method == "POST" and request.path == f"/upload/storage/v1/b/{BUCKET}/o"


def uploads(adapter: FakeGCS) -> list[Recorded]:
    return [r for r in adapter.requests if is_upload(r)]


def only_uploads(answer: Callable[[Recorded], FakeResponse]) -> Callable[[Recorded], FakeResponse]:
    return lambda request: answer(request) if is_upload(request) else gcs_error(403, "not under test")


def upload_parts(request: Recorded) -> tuple[dict, bytes, bytes]:
    """(JSON metadata, media part headers, media bytes) of a multipart upload body."""
    boundary = request.body.split(b"\r\n", 1)[0]
    parts = request.body.split(boundary)
    metadata = json.loads(parts[1].split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n"))
    media_headers, media = parts[2].split(b"\r\n\r\n", 1)
    return metadata, media_headers.strip().lower(), media.removesuffix(b"\r\n")


def test_412_means_already_published_and_is_success() -> None:
    adapter = FakeGCS(
        only_uploads(lambda request: gcs_error(412, "At least one of the pre-conditions you specified did not hold."))
    )
    store = GCSStore(bucket=BUCKET, prefix="prod", client=fake_client(adapter), cdn_base_url="https://a.example")
    assert store.put(NAME, DATA) == f"https://a.example/prod/{NAME}"
    (request,) = uploads(adapter)  # exactly one: a 412 is an answer, not retried
    assert request.query["ifGenerationMatch"] == ["0"]
    assert request.query["uploadType"] == ["multipart"]
    metadata, media_headers, media = upload_parts(request)
    assert metadata["name"] == f"prod/{NAME}"
    assert metadata["cacheControl"] == "public, max-age=31536000, immutable"
    assert media_headers == b"content-type: audio/wav"
    assert media == DATA


def test_events_upload_is_ndjson_and_create_only() -> None:
    adapter = FakeGCS(only_uploads(lambda request: object_resource(BUCKET, EVENTS, "application/x-ndjson", 3)))
    store = GCSStore(bucket=BUCKET, client=fake_client(adapter))
    store.put(EVENTS, b"{}\n")
    (request,) = uploads(adapter)
    assert request.query["ifGenerationMatch"] == ["0"]
    metadata, media_headers, media = upload_parts(request)
    assert metadata["name"] == EVENTS
    assert media_headers == b"content-type: application/x-ndjson"
    assert media == b"{}\n"


def test_upload_is_retried_on_503_because_it_is_conditional() -> None:
    answers = [gcs_error(503, "backend error"), object_resource(BUCKET, NAME, "audio/wav", len(DATA))]
    adapter = FakeGCS(only_uploads(lambda request: answers.pop(0)))
    store = GCSStore(bucket=BUCKET, client=fake_client(adapter), retry_deadline_s=10.0)
    assert store.put(NAME, DATA) == f"https://storage.googleapis.com/{BUCKET}/{NAME}"
    assert len(uploads(adapter)) == 2
    assert all(r.query["ifGenerationMatch"] == ["0"] for r in uploads(adapter))


def test_persistent_5xx_is_store_unavailable_within_the_deadline() -> None:
    adapter = FakeGCS(only_uploads(lambda request: gcs_error(503, "backend error")))
    store = GCSStore(bucket=BUCKET, client=fake_client(adapter), retry_deadline_s=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.put(NAME, DATA)
    assert time.monotonic() - started < 5.0
    assert len(uploads(adapter)) >= 1


@pytest.mark.parametrize("status", [400, 401, 403])
def test_client_errors_are_store_unavailable_without_retry(status: int) -> None:
    adapter = FakeGCS(only_uploads(lambda request: gcs_error(status, "nope")))
    store = GCSStore(bucket=BUCKET, client=fake_client(adapter), retry_deadline_s=10.0)
    with pytest.raises(StoreUnavailable) as info:
        store.put(NAME, DATA)
    assert len(uploads(adapter)) == 1
    assert info.value.__cause__ is not None


def test_exists_and_get_through_the_transport() -> None:
    encoded = NAME.replace("/", "%2F")

    def handler(request: Recorded) -> FakeResponse:
        if request.path == f"/download/storage/v1/b/{BUCKET}/o/{encoded}" and request.query["alt"] == ["media"]:
            return FakeResponse(200, DATA, {"Content-Type": "audio/wav"})
        if request.path == f"/storage/v1/b/{BUCKET}/o/{encoded}":
            return object_resource(BUCKET, NAME, "audio/wav", len(DATA))
        return gcs_error(404, "No such object")

    adapter = FakeGCS(handler)
    store = GCSStore(bucket=BUCKET, client=fake_client(adapter))
    assert store.exists(NAME)
    assert store.get(NAME) == DATA
    other = clip_name("Other.")
    assert not store.exists(other)
    with pytest.raises(ObjectNotFound):
        store.get(other)


def test_constructor_does_no_io() -> None:
    adapter = FakeGCS(lambda request: gcs_error(500, "should not be called"))
    store = GCSStore(bucket=BUCKET, prefix="a/b", client=fake_client(adapter), cdn_base_url="https://c.example/x/")
    assert store.url(NAME) == f"https://c.example/x/a/b/{NAME}"
    assert adapter.requests == []


@pytest.mark.parametrize("bucket", ["", "a", "Upper", "a/b", "-lead", "a..b", "gs://x"])
def test_bad_bucket_names_are_config_errors(bucket: str) -> None:
    with pytest.raises(ConfigError):
        GCSStore(bucket=bucket, client=fake_client(FakeGCS(lambda r: gcs_error(500, "x"))))


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", ""), ("/", ""), ("a", "a"), ("/a/b/", "a/b"), ("a.b_c-d/E", "a.b_c-d/E")],
)
def test_normalize_prefix(prefix: str, expected: str) -> None:
    assert normalize_prefix(prefix) == expected


@pytest.mark.parametrize("prefix", ["a//b", "a/../b", "..", "a/./b", "a b", "a\\b", "a%2Fb"])
def test_bad_prefixes_are_config_errors(prefix: str) -> None:
    with pytest.raises(ConfigError):
        normalize_prefix(prefix)
