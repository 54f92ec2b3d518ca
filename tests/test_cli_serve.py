"""`imgcap serve` as a process: the startup line with the URL, a free port with --port 0, the
warning for other hosts, a busy port, raw hostile paths through the real HTTP server, Ctrl-C."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serve_fixtures import make_gallery

IMGCAP = Path(sys.executable).with_name("imgcap")


def start(db: Path, *args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "IMGCAP_DB": str(db), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [str(IMGCAP), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    m = re.search(r"at (http://\S+/) \(Ctrl-C to stop\)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no startup line: {line!r} {proc.stderr.read()}")
    return proc, m.group(1)


def raw(url: str, path: str, host: str | None = None) -> int:
    """Status of a request sent byte for byte (no client-side normalisation of `..`)."""
    hostport = url.split("//")[1].rstrip("/")
    h, p = hostport.rsplit(":", 1)
    with socket.create_connection((h, int(p)), timeout=10) as s:
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host or hostport}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_serve_starts_answers_and_stops_cleanly(tmp_path):
    _, db = make_gallery(tmp_path)
    proc, url = start(db)
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        conn = http.client.HTTPConnection(url.split("//")[1].rstrip("/"), timeout=10)
        conn.request("GET", "/status")
        r = conn.getresponse()
        assert r.status == 200 and b"Photos" in r.read()
        for path in ("/static/../../pyproject.toml", "/static/%2e%2e/%2e%2e/cli.py",
                     "/thumb/..%2f..%2fetc%2fpasswd", "/static/app.js%00", "//etc/passwd",
                     "/original/../../etc/passwd"):  # fmt: skip
            assert raw(url, path) in (400, 404), path
        assert raw(url, "/static/app.js") == 200
        # Keep-alive requests are not held back by Nagle + delayed ACK (a 40 ms floor each).
        times = []
        for _ in range(15):
            t = time.perf_counter()
            conn.request("GET", "/static/style.css")
            conn.getresponse().read()
            times.append(time.perf_counter() - t)
        assert sorted(times)[7] < 0.030, times
        assert raw(url, "/", host="rebind.attacker.example:80") == 400
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_other_hosts_get_a_warning(tmp_path):
    _, db = make_gallery(tmp_path)
    proc, url = start(db, "--host", "0.0.0.0")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert "no authentication" in err and "0.0.0.0" in err
    assert proc.returncode == 0


def test_a_busy_port_is_a_clear_error(tmp_path):
    _, db = make_gallery(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run(
            [str(IMGCAP), "serve", "--db", str(db), "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["--port", "70000"], ["--port", "-1"]])
def test_bad_ports_are_usage_errors(args):
    r = subprocess.run([str(IMGCAP), "serve", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2


def test_startup_is_quick(tmp_path):
    _, db = make_gallery(tmp_path)
    t = time.perf_counter()
    proc, _ = start(db)
    took = time.perf_counter() - t
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert took < 10  # no model is loaded at startup (the first query loads the text tower)


def test_ctrl_c_stops_from_the_startup_line_on_even_if_sigint_was_ignored(tmp_path, monkeypatch):
    """Between the startup line and uvicorn's own handlers, a Ctrl-C must raise (and stop the
    server), not be lost: a process started with SIGINT ignored inherits SIG_IGN."""
    import uvicorn

    from indexer.config import Settings
    from search.web import server

    _, db = make_gallery(tmp_path)
    seen = []
    monkeypatch.setattr(
        uvicorn.Server,
        "run",
        lambda self, sockets=None: seen.append(signal.getsignal(signal.SIGINT)),
    )
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server.serve(Settings(db_path=db), port=0, say=lambda _t: None)
        assert seen == [signal.default_int_handler]
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # put back as it was
    finally:
        signal.signal(signal.SIGINT, before)


def test_open_model_check_and_startup_line(tmp_path, monkeypatch):
    import uvicorn

    from indexer.config import Settings
    from indexer.errors import UsageError
    from search.web import server

    _, db = make_gallery(tmp_path)
    opened, said = [], []
    monkeypatch.setattr("webbrowser.open", opened.append)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    server.serve(Settings(db_path=db), port=0, open_browser=True, say=said.append, warn=said.append)
    assert said[0].startswith(f"Serving {db} at http://127.0.0.1:") and said[-1] == "Stopped."
    assert opened == [said[0].split(" at ")[1].split(" ")[0]]
    with pytest.raises(UsageError, match="no results for model 'nope'"):
        server.serve(Settings(db_path=db), port=0, model="nope", say=said.append)
    assert server.url_for("::", 8765) == "http://[::1]:8765/"
    assert server.url_for("0.0.0.0", 80) == "http://127.0.0.1:80/"
