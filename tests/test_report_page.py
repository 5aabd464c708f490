"""The report page in a real headless Chromium, served by a real werkzeug server on loopback.

Chromium cannot send headers from the command line, so it logs in through
``/admin/login?token=...&next=...``, which sets the cookie and redirects to the report.
Screenshots land in ``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import pytest
from werkzeug.serving import make_server

from tests.report_support import TOKEN, make_app
from tests.support import free_port

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
QUERY = "since=2026-11-01&until=2026-11-03"
CHROMIUM_TIMEOUT_S = 60


@pytest.fixture()
def server(tmp_path) -> Iterator[str]:
    app = make_app(tmp_path)
    port = free_port()
    srv = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.shutdown()
        thread.join(timeout=5)
        srv.server_close()


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium chromium-driver")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args,
        ],
        capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=True,
    )


def login_url(base: str, query: str = QUERY) -> str:
    return f"{base}/admin/login?token={quote(TOKEN)}&next={quote('/admin/report?' + query)}"


class Dom(HTMLParser):
    """Every element with its attributes and the ``data-chart`` of the SVG it sits in."""

    VOID: ClassVar[set[str]] = {"meta", "link", "input", "br", "img", "hr", "source", "col", "area", "base", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], str | None]] = []
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        chart = next((x.get("data-chart") for t, x in reversed(self.stack) if t == "svg"), None)
        self.elements.append((tag, a, a.get("data-chart") if tag == "svg" else chart))
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, chart: str | None = None, **attrs: str) -> list[dict[str, str]]:
        out = []
        for t, a, c in self.elements:
            if t == tag and (chart is None or c == chart) and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(a)
        return out


def parse(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    return dom


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decoded pixel rows) of an 8-bit PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.parametrize(("name", "width", "height"), [("mobile", 420, 1600), ("desktop", 1280, 1400)])
def test_report_page_renders_charts_in_chromium(server, tmp_path, name, width, height):
    dom = parse(chromium(tmp_path, f"--window-size={width},{height}", "--dump-dom", login_url(server)).stdout)

    assert dom.find("meta", name="viewport")
    assert not dom.find("script") and not dom.find("link")  # nothing external, no script
    charts = {a["data-chart"]: a for a in dom.find("svg") if "data-chart" in a}
    assert set(charts) == {"hit-rate", "latency", "fallback-rate", "failures"}
    assert all(a.get("viewbox") == "0 0 480 220" for a in charts.values())  # scales with the column

    hit = dom.find("path", "hit-rate", **{"class": "series"})
    assert [(p["data-series"], p["data-points"]) for p in hit] == [("demo", "2"), ("quiet", "0")]
    assert len(dom.find("circle", "hit-rate")) == 2  # Nov 1 and Nov 3; Nov 2 is a gap
    assert [a["data-target"] for a in dom.find("line", "hit-rate", **{"class": "target"})] == ["0.2"]

    bars = dom.find("g", "latency", **{"class": "series"})
    assert [g["data-series"] for g in bars] == ["warmline", "control"]
    values = [float(r["data-value"]) for r in dom.find("rect", "latency")]
    assert values == [290, 320, 320, 1400, 8000, 8000, 2200, 4200, 4200, 2200, 4200, 4200]

    fb = dom.find("path", "fallback-rate", **{"class": "series"})
    assert [(p["data-series"], p["data-points"]) for p in fb] == [("demo", "2"), ("quiet", "0")]

    heard = dom.find("path", "failures", **{"class": "series"})
    assert [(p["data-series"], p["data-points"]) for p in heard] == [("<Say>", "2"), ("fallback voice", "2"),
                                                                     ("apology", "2")]

    cells = [(c["data-metric"], c["data-passed"]) for c in dom.find("td") if "data-passed" in c]
    metrics = ["ttfa_p95", "tta_p95", "hit_rate", "fallback_rate", "fallback_voice_rate", "apology_rate"]
    assert cells == list(zip(metrics, ["", "", "true", "false", "true", "false"])) + [(m, "") for m in metrics]
    text = " ".join(" ".join(dom.text).split())
    assert "Sentence cache hit rate 53.3 %" in text
    assert text.count("too few turns") >= 2  # demo's p95s over 9 and 8 turns are not judged
    assert "We're at 12 Harbour Street, by the ferry." in text
    assert "skipped 1 corrupt and 1 truncated lines and 1 invalid events" in text

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report-{name}.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, f"--window-size={width},{height}", "--hide-scrollbars", f"--screenshot={shot}", login_url(server))
    w, h, colours = png_size_and_colours(shot)
    assert (w, h) == (width, height)
    assert colours > 50  # a rendered page, not a blank or error screen


def test_without_the_token_chromium_and_http_get_401(server, tmp_path):
    dom_text = chromium(tmp_path, "--dump-dom", f"{server}/admin/report?{QUERY}").stdout
    assert '"error":"unauthorized"' in dom_text.replace(" ", "")
    for path, headers in (
        ("/admin/report", {}),
        ("/admin/report.json", {"Authorization": "Bearer wrong"}),
        ("/admin/report.json", {"Cookie": "warmline_admin=forged"}),
        ("/admin/login?token=wrong&next=/admin/report", {}),
    ):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(urllib.request.Request(server + path, headers=headers), timeout=10)
        assert info.value.code == 401
        assert json.loads(info.value.read())["error"] == "unauthorized"
    req = urllib.request.Request(f"{server}/admin/report.json?{QUERY}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["totals"]["demo"]["turns"] == 12


# ---- login and the guard, through Flask's test client (no browser needed) --------------------------


@pytest.fixture()
def client(tmp_path):
    from app.admin.auth import admin_required

    app = make_app(tmp_path)

    @app.post("/admin/_action")
    @admin_required
    def action():
        return {"done": True}

    return app.test_client()


def test_login_form_and_cookie_rules(client):
    form = client.get("/admin/login?next=/admin/report?since=2026-11-01")
    assert form.status_code == 200 and b'<form method="post" action="/admin/login">' in form.data
    assert b'value="/admin/report?since=2026-11-01"' in form.data

    resp = client.post("/admin/login", data={"token": TOKEN, "next": "/admin/report.json?" + QUERY})
    assert (resp.status_code, resp.headers["Location"]) == (303, "/admin/report.json?" + QUERY)
    cookie = resp.headers["Set-Cookie"]
    assert TOKEN not in cookie
    for part in ("HttpOnly", "SameSite=Strict", "Path=/admin"):
        assert part in cookie
    assert client.get("/admin/report.json?" + QUERY).json["totals"]["demo"]["turns"] == 12
    # The cookie reads reports but cannot trigger admin actions; the bearer header can.
    assert client.post("/admin/_action").status_code == 401
    assert client.post("/admin/_action", headers={"Authorization": f"Bearer {TOKEN}"}).json == {"done": True}
    client.post("/admin/logout")
    assert client.get("/admin/report.json").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/voice/x", ""])
def test_login_never_redirects_off_the_admin_area(client, target):
    resp = client.get("/admin/login", query_string={"token": TOKEN, "next": target})
    assert (resp.status_code, resp.headers["Location"]) == (303, "/admin/report")


def test_bad_query_parameters(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/admin/report.json?since=yesterday", headers=auth).status_code == 400
    assert client.get("/admin/report.json?since=2026-11-05&until=2026-11-01", headers=auth).status_code == 400
    assert client.get("/admin/report?business=nobody", headers=auth).status_code == 404
    page = client.get("/admin/report?business=quiet&" + QUERY, headers=auth)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert b"<b>quiet</b>" in page.data and b"No missed sentences in this window." in page.data
