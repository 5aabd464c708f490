"""Disk faults under the key index: calls keep working without it, and the log says so once, clearly.

Tests run as root, so permissions cannot make a directory unwritable; instead the index's place
is taken by a regular file (mkdir fails with EEXIST/ENOTDIR, as on a read-only or broken mount),
or its database file holds garbage (a torn or corrupted disk).
"""

from __future__ import annotations

import re

import pytest

from app.responders.base import Reply
from simulator.llm_emulator import LLMEmulator
from tests.conftest import TWILIO_TOKEN, new_call_sid, signed_post, twilio_form
from tests.fakes import ScriptedResponder, ToneProvider
from tests.faults_support import Caller, answer_name, audit_store, echo_responses, listens
from tests.server_support import GunicornServer
from tests.twiml_support import verbs

pytestmark = pytest.mark.slow
INDEX_DOWN = "key index unavailable, serving without it"


def test_index_directory_unusable_calls_keep_working_with_one_clear_log_line(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    (data / "index").write_text("not a directory\n")
    with LLMEmulator(responses=echo_responses) as llm:
        env = {"WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "WARMLINE_LLM_URL": llm.base_url,
               "WARMLINE_LLM_API_KEY": llm.api_key, "WARMLINE_HOP_S": "1.0"}
        with GunicornServer(data, env=env, workers=1) as server:
            turns = [Caller(server.base_url, new_call_sid()).turn(q) for q in ("no index", "no index", "second")]
            log = server.log_tail(50_000)
    for turn, scenario in zip(turns, ("no index", "no index", "second")):
        assert listens(turn.final) and turn.says() == [], turn.final
        url = turn.plays()[-1]
        assert url.endswith("/cdn/" + answer_name(scenario))
    assert fetch_clip_ok(data, answer_name("no index"))
    lines = [line for line in log.splitlines() if INDEX_DOWN in line]
    assert len(lines) == 1, lines  # one clear line per process, not one per lookup
    assert re.search(r"key index at \S+/index cannot be opened", lines[0]), lines[0]
    assert audit_store(data / "cdn")
    assert (data / "index").read_text() == "not a directory\n"  # nothing tried to "repair" it


def fetch_clip_ok(data, name: str) -> bool:
    from app.speech.wav import validate_ulaw_wav

    return validate_ulaw_wav((data / "cdn" / name).read_bytes()) > 0.5


def test_corrupt_index_database_calls_keep_working(make_app, tmp_path, caplog):
    """The index's SQLite file is garbage: every lookup fails; the answer is still synthesized and played."""
    index_dir = tmp_path / "var" / "index"
    index_dir.mkdir(parents=True)
    (index_dir / "cache.db").write_bytes(b"\x00garbage, not an SQLite database" * 64)
    provider = ToneProvider()
    app = make_app(runtime={"providers": {"piper": provider},
                            "responder": ScriptedResponder({}, default=Reply("Here is the corrupt answer."))})
    try:
        client = app.test_client()
        for _ in range(2):
            call_sid = new_call_sid()
            doc = verbs(signed_post(client, f"/voice/process/demo/{call_sid}",
                                    twilio_form(call_sid, SpeechResult="corrupt")).data)
            assert doc[0] == ("Play", {}, "http://localhost/cdn/" + answer_name("corrupt"), [])
            assert listens(doc)
            with client.get("/cdn/" + answer_name("corrupt")) as clip:
                assert clip.status_code == 200 and clip.mimetype == "audio/wav"
    finally:
        app.extensions["warmline"].shutdown(wait=True)
    assert provider.calls.count("here is the corrupt answer.") == 1  # the second call found it in the store
    errors = [r for r in caplog.records if INDEX_DOWN in r.getMessage()]
    assert len(errors) == 1 and errors[0].levelname == "ERROR"
    assert "not a database" in errors[0].getMessage()
