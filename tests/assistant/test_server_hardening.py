"""Regressions of issue #19 (the server as a hostile or broken client finds it).

Each test drives the server the way the finding did: a client that never reads (a raw socket
with a small receive buffer), silent connections against a token, nested JSON, malformed
HTTP (raw requests the client library would not send), a database that hangs or is replaced
under a running server, SIGTERM with a stuck client (a subprocess). Fake pipeline, port 0,
deadlines instead of sleeps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect
from ws_harness import (
    FakePipeline,
    RawClient,
    VersionAnswer,
    VersionAnswerer,
    fake_server,
    http_status,
    make_db,
    recv_json,
    recv_until,
    silence_pcm,
    tone_pcm,
)

from assistant.events import CloseCode
from assistant.session import SessionLimits, json_depth

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_server import closed_with, error_of, speak, well_behaved  # noqa: E402

HARNESS = Path(__file__).resolve().parent.parent / "ws_harness.py"


def until(condition, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def utterances(count: int, rate: int = 16000) -> bytes:
    return (tone_pcm(1.0, rate) + silence_pcm(0.8, rate)) * count


def send_frames(client: RawClient, pcm: bytes, frame: int = 3200) -> None:
    """Push PCM as fast as the socket takes it; stops quietly once the server drops us."""
    try:
        for i in range(0, len(pcm), frame):
            client.send(pcm[i : i + frame])
    except OSError:
        pass


def no_server_errors(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


# -- 1, 2: a client that never reads -----------------------------------------------------------


def test_client_that_never_reads_is_closed_and_frees_its_slot():
    pipeline = FakePipeline(pad=200_000)  # 200 KB finals: its buffers fill within a few
    limits = SessionLimits(send_timeout_s=1.0, max_buffered_s=600)
    with fake_server(pipeline, max_sessions=1, limits=limits) as st:
        stuck = RawClient(st.port, rcvbuf=4096)
        stuck.send('{"type": "start"}')
        feeder = threading.Thread(target=send_frames, args=(stuck, utterances(40)), daemon=True)
        feeder.start()
        try:
            until(lambda: st.pipeline.batches, what="the stuck client's first final")
            until(lambda: not st.server.sessions, 60, "the stuck session to be closed")
            assert 'assistant_errors_total{code="slow_client"} 1' in st.server.metrics.render()
            pipeline.pad = 0
            well_behaved(st.url)  # the one slot is free again
        finally:
            stuck.close()
            feeder.join(10)


def test_sigterm_with_a_client_that_never_reads_exits_within_the_grace(tmp_path):
    grace = 3.0
    proc = subprocess.Popen(
        [sys.executable, str(HARNESS), "--pad", "200000", "--send-timeout-s", "600",
         "--shutdown-grace-s", str(grace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HARNESS.parent.parent)},
    )  # fmt: skip
    stuck = None
    try:
        line = ""
        while not line.startswith("port "):  # after the server's own log lines
            line = proc.stdout.readline()
            assert line, "the server process ended before listening"
        port = int(line.split()[1])
        stuck = RawClient(port, rcvbuf=4096)
        stuck.send('{"type": "start"}')
        send_frames(stuck, utterances(12))  # finals queue up behind a full socket
        stuck.send(tone_pcm(1.0))  # and an utterance in flight
        time.sleep(1.0)  # let the server take it in (nothing to poll across processes)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace + 20)  # raises TimeoutExpired when the exit never comes
        # grace/2 for the utterance in flight, 1 s goodbye, 1 s close, 1 s wait; teardown
        assert time.monotonic() - sent < grace + 3, "shutdown took longer than its bound"
        assert proc.returncode == 0
        log = proc.stdout.read()
        assert "Traceback" not in log, log
    finally:
        if stuck is not None:
            stuck.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- 3: authentication before resources ---------------------------------------------------------


def test_connections_without_token_take_no_session_slot():
    limits = SessionLimits(auth_timeout_s=2.0)
    with (
        fake_server(token="s3cret", max_sessions=2, limits=limits) as st,
        contextlib.ExitStack() as stack,
    ):
        silent = [stack.enter_context(connect(st.url, open_timeout=10)) for _ in range(3)]
        time.sleep(0.2)
        assert not st.server.sessions
        well_behaved(st.url + "?token=s3cret")  # not too_many_sessions
        well_behaved(st.url, token="s3cret")
        for ws in silent:  # no token within auth_timeout_s: refused
            assert error_of(ws)["code"] == "unauthorized"
            assert closed_with(ws) == CloseCode.POLICY_VIOLATION


def test_before_the_token_frames_are_small_and_waiting_connections_are_few():
    with fake_server(token="s3cret", max_sessions=1) as st:
        with connect(st.url) as ws:
            ws.send(bytes(200_000))  # under the session maximum, over the pre-token one
            assert closed_with(ws) == CloseCode.MESSAGE_TOO_BIG
        with contextlib.ExitStack() as stack:
            waiting = [stack.enter_context(connect(st.url)) for _ in range(4)]
            until(lambda: st.server._pending_auth == 4, what="4 connections awaiting a token")
            with connect(st.url) as fifth:  # 4 per slot may wait for their token
                assert error_of(fifth)["code"] == "too_many_sessions"
            for ws in waiting:
                ws.send('{"type": "auth", "token": "s3cret"}')
        well_behaved(st.url, token="s3cret")


def test_auth_message_then_start_and_wrong_first_message():
    with fake_server(token="s3cret") as st:
        with connect(st.url) as ws:
            ws.send('{"type": "auth", "token": "s3cret"}')
            ws.send('{"type": "start"}')
            assert recv_json(ws)["type"] == "ready"
        with connect(st.url) as ws:
            ws.send("[" * 5000)  # not even JSON: refused like a missing token
            assert error_of(ws)["code"] == "unauthorized"
            assert closed_with(ws) == CloseCode.POLICY_VIOLATION


def test_connection_that_never_starts_is_closed():
    with fake_server(limits=SessionLimits(start_timeout_s=0.5)) as st, connect(st.url) as ws:
        for _ in range(3):  # messages that are not a start do not extend the deadline
            ws.send('{"type": "nope"}')
            assert error_of(ws)["code"] == "unknown_type"
        assert error_of(ws)["code"] == "start_timeout"
        assert closed_with(ws) == CloseCode.IDLE_TIMEOUT


# -- 4, 12: control frames ----------------------------------------------------------------------


def test_json_depth_is_counted_outside_strings():
    assert json_depth('{"type": "start", "phrases": ["a", "b"]}') == 2
    assert json_depth('{"a": "[[[[{{{{\\"[["}') == 1
    assert json_depth("[" * 1000) == 1000


@pytest.mark.parametrize(
    "frame", ["[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000, "[" * 100_000]
)
def test_deeply_nested_json_is_bad_json_and_the_session_goes_on(fake, caplog, frame):
    with connect(fake.url) as ws:
        ws.send(frame)
        assert error_of(ws)["code"] == "bad_json"
        ws.send('{"type": "start"}')
        assert recv_json(ws)["type"] == "ready"
    no_server_errors(caplog)


def test_oversized_text_frame_closes_with_1009(fake):
    with connect(fake.url) as ws:
        ws.send(json.dumps({"type": "start", "pad": "x" * (SessionLimits().max_control_bytes)}))
        assert error_of(ws)["code"] == "frame_too_large"
        assert closed_with(ws) == CloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"language": {}}, "bad_message"),
        ({"language": False}, "bad_message"),
        ({"language": 0}, "bad_message"),
        ({"language": ""}, "bad_message"),
        ({"language": ["en"]}, "bad_message"),
        ({"store": True}, "bad_message"),
        ({"store": 1.5}, "bad_message"),
        ({"store": {}}, "bad_message"),
        ({"token": 5}, "bad_message"),
        ({"phrases": "tide"}, "bad_message"),
        ({"sample_rate": "16000"}, "bad_sample_rate"),
        ({"sample_rate": 16000.0}, "bad_sample_rate"),
        ({"sample_rate": True}, "bad_sample_rate"),
    ],
)
def test_start_fields_of_the_wrong_json_type_are_errors(fake, fields, code):
    with connect(fake.url) as ws:
        ws.send(json.dumps({"type": "start", **fields}))
        assert error_of(ws)["code"] == code
        ws.send('{"type": "start"}')  # not started: the session goes on
        assert recv_json(ws)["type"] == "ready"


def test_null_start_fields_take_their_defaults(fake):
    with connect(fake.url) as ws:
        ws.send('{"type": "start", "language": null, "store": null, "sample_rate": null}')
        ready = recv_json(ws)
        assert (ready["type"], ready["language"], ready["store"]) == ("ready", "auto", "1")


def test_start_right_after_stop_begins_the_next_stream(fake):
    with connect(fake.url) as ws:
        ws.send('{"type": "start"}')
        recv_json(ws)
        speak(ws)
        ws.send('{"type": "stop"}')
        ws.send('{"type": "start"}')  # before `end`
        got = recv_until(ws, "ready")
        assert [e["type"] for e in got if e["type"] != "partial"] == ["final", "end", "ready"]
        speak(ws)
        ws.send('{"type": "stop"}')
        got = recv_until(ws, "end")
        assert [e["type"] for e in got if e["type"] != "partial"] == ["final", "end"]


def test_slot_is_free_once_the_client_has_seen_its_close():
    limits = SessionLimits(idle_timeout_s=0.5)
    with fake_server(max_sessions=1, limits=limits) as st, RawClient(st.port) as gone:
        # The server closes it; the client has the fatal error and the close frame, and
        # reconnects at once without answering the close (a phone changing networks).
        got = [json.loads(m) for m in gone.messages(reply=False)]
        assert got[-1]["code"] == "idle_timeout" and gone.close_code == CloseCode.IDLE_TIMEOUT
        well_behaved(st.url)


def test_reconnect_storm_at_the_session_limit_is_never_refused():
    """Each client holds one connection at a time and reconnects the moment the last one is
    closed: the server must never count more sessions than there are clients."""
    clients, rounds = 4, 100
    refused: list[dict] = []

    def storm(url: str) -> None:
        for _ in range(rounds):
            with connect(url, open_timeout=10) as ws:
                ws.send('{"type": "start"}')
                event = recv_json(ws)
                if event["type"] != "ready":
                    refused.append(event)

    with fake_server(max_sessions=clients) as st:
        threads = [threading.Thread(target=storm, args=(st.url,)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not refused, refused[:3]


# -- 8, 9, 12: HTTP ----------------------------------------------------------------------------


def _get(path: str, *headers: str, host: str = "127.0.0.1") -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode()


UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
)


def test_long_paths_and_duplicated_headers_get_4xx_not_500(fake, caplog):
    port = fake.port
    assert http_status(port, _get("/" + "a" * 300)) == 404  # ENAMETOOLONG
    assert http_status(port, _get("/" + "a" * 5000)) == 414
    assert http_status(port, _get("/%00x")) == 404
    assert http_status(port, _get("/").replace(b"GET", b"POST", 1)) == 405
    origin = f"Origin: http://127.0.0.1:{port}"
    assert http_status(port, _get("/ws", *UPGRADE, origin, origin)) == 400
    assert http_status(port, _get("/", "Host: 127.0.0.1")) == 400  # Host twice
    assert http_status(port, _get("/ws", *UPGRADE, "Host: other")) == 400
    assert http_status(port, _get("/healthz")) == 200  # and the server goes on
    no_server_errors(caplog)


def test_origin_is_checked_against_the_bound_names_not_the_host_header(fake):
    port = fake.port
    rebinding = (f"Origin: http://evil.example:{port}",)
    assert http_status(port, _get("/ws", *UPGRADE, *rebinding, host=f"evil.example:{port}")) == 403
    assert http_status(port, _get("/ws", *UPGRADE, "Origin: null")) == 403
    wrong_port = f"Origin: http://127.0.0.1:{port + 1}"
    assert http_status(port, _get("/ws", *UPGRADE, wrong_port)) == 403
    for page in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        assert http_status(port, _get("/ws", *UPGRADE, f"Origin: {page}")) == 101, page


def test_metrics_and_stores_need_the_token_when_one_is_set():
    with fake_server(token="s3cret") as st:
        for path in ("/metrics", "/stores"):
            assert http_status(st.port, _get(path)) == 401
            assert http_status(st.port, _get(path + "?token=wrong")) == 401
            assert http_status(st.port, _get(path + "?token=s3cret")) == 200
            assert http_status(st.port, _get(path, "Authorization: Bearer s3cret")) == 200
        assert http_status(st.port, _get("/healthz")) == 200  # probes need no token


# -- 5, 6, 7: the database ---------------------------------------------------------------------


def test_inventory_recovers_when_its_sqlite_file_is_replaced(tmp_path):
    from assistant.inventory import Inventory, InventoryUnavailable

    path = tmp_path / "inventory.sqlite"
    make_db(path, "v1")
    inventory = Inventory(f"sqlite:///{path}")
    assert inventory.check() == "v1"
    make_db(path, "v2")  # replaced while healthy: the new file, not the old inode
    assert inventory.check() == "v2"
    path.write_bytes(b"")  # truncated: down
    with pytest.raises(InventoryUnavailable):
        inventory.check()
    path.write_bytes(b"not a database")
    with pytest.raises(InventoryUnavailable):
        inventory.check()
    make_db(path, "v3")  # back: no restart needed
    assert inventory.check() == "v3"
    path.unlink()
    with pytest.raises(InventoryUnavailable):
        inventory.check()
    make_db(path, "v4")
    assert inventory.check() == "v4"


def http_body(port: int, path: str) -> bytes:
    import urllib.request

    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()


def one_final(url: str) -> tuple[list[dict], float]:
    """One utterance, then stop -> (events up to end, seconds from stop to the final)."""
    with connect(url, open_timeout=10) as ws:
        ws.send('{"type": "start"}')
        recv_json(ws)
        ws.send(tone_pcm(1.0))
        ws.send('{"type": "stop"}')
        stopped = time.monotonic()
        got, final_at = [], None
        while not got or got[-1]["type"] != "end":
            got.append(recv_json(ws, 60))
            if got[-1]["type"] == "final":
                final_at = time.monotonic()
    return got, final_at - stopped


def test_database_file_replaced_under_a_running_server(tmp_path):
    from assistant.inventory import Inventory

    path = tmp_path / "inventory.sqlite"
    make_db(path, "v1")
    answerer = VersionAnswerer(Inventory(f"sqlite:///{path}"))
    with fake_server(FakePipeline(answerer=answerer), db_retry_s=0.2) as st:
        health = json.loads(http_body(st.port, "/healthz"))
        assert health["stages"]["answer"] == "VersionAnswerer" and health["database"] == "closed"
        got, _ = one_final(st.url)
        assert [e["answer"]["text"] for e in got if e["type"] == "final"] == ["v1"]
        path.write_bytes(b"")  # the database goes away mid-service
        got, _ = one_final(st.url)
        assert ("error", "db_unavailable") in [(e["type"], e.get("code")) for e in got]
        make_db(path, "v2")
        time.sleep(0.3)  # past db_retry_s: the breaker lets a call through again

        def answered() -> bool:
            got, _ = one_final(st.url)
            return [e["answer"] and e["answer"]["text"] for e in got if e["type"] == "final"] == [
                "v2"
            ]

        until(answered, 30, "answers from the new file")


class HangingAnswerer:
    """A database that accepts and never answers, until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def answer(self, nlu, store, nbest=None):
        self.calls += 1
        self.release.wait(60)
        return VersionAnswer("back")


def test_hung_database_costs_one_timeout_not_one_per_final():
    answerer = HangingAnswerer()
    timeout = 1.5
    config = {"answer_timeout_s": timeout, "db_retry_s": 60.0}
    with fake_server(FakePipeline(answerer=answerer), **config) as st:
        results: list = []
        clients = [
            threading.Thread(target=lambda: results.append(one_final(st.url))) for _ in range(3)
        ]
        for t in clients:
            t.start()
        for t in clients:
            t.join(90)
        assert len(results) == 3
        for got, latency in results:
            assert ("error", "db_unavailable") in [(e["type"], e.get("code")) for e in got]
            assert [e["answer"] for e in got if e["type"] == "final"] == [None]
            assert latency < timeout + 5, latency  # not 1x, 2x, 3x the timeout
        calls = answerer.calls
        got, latency = one_final(st.url)  # the breaker is open: no wait at all
        assert latency < timeout, latency
        assert answerer.calls == calls
        assert ("error", "db_unavailable") in [(e["type"], e.get("code")) for e in got]
        answerer.release.set()


def test_unparseable_database_url_is_inventory_unavailable():
    from assistant.inventory import Inventory, InventoryUnavailable

    inventory = Inventory("not a url")  # constructing it does not raise
    with pytest.raises(InventoryUnavailable, match="not a database URL"):
        inventory.check()


def test_a_database_that_hangs_costs_one_connect_timeout():
    """PostgreSQL that accepts and never answers (a listening socket nobody reads): the first
    query waits out connect_timeout, the next ones fail at once (start-up asks three times)."""
    import socket

    from assistant.inventory import Inventory, InventoryUnavailable

    pytest.importorskip("psycopg2")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        inventory = Inventory(f"postgresql://nobody@127.0.0.1:{port}/inventory?connect_timeout=1")
        inventory.hung_retry_s = 60.0
        started = time.monotonic()
        with pytest.raises(InventoryUnavailable):
            inventory.check()
        assert time.monotonic() - started >= 0.9  # it did wait (connect_timeout)
        for call in (inventory.check, inventory.stores, inventory.products):
            started = time.monotonic()
            with pytest.raises(InventoryUnavailable, match="did not answer"):
                call()
            assert time.monotonic() - started < 0.5


def test_circuit_breaker_opens_on_a_hang_or_repeated_errors_and_tries_again():
    from assistant.answer_stage import CircuitBreaker

    now = [0.0]
    breaker = CircuitBreaker(failures_to_open=3, open_s=10.0, clock=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "closed"  # two errors: still trying
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.5
    assert breaker.allow() and not breaker.allow()  # half open: one trial at a time
    breaker.failure()  # the trial failed: open again
    assert not breaker.allow()
    now[0] = 21.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure(hung=True)  # one hang is enough
    assert breaker.state == "open"
