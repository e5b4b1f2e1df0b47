"""The reliability suite at CI size (lab.bench.reliability --quick, under a minute).

A fake-pipeline server in a subprocess takes every documented kind of bad input, a fuzz run
with good clients alongside, a reconnect storm at --max-sessions, a client that never reads,
its database emptied and replaced, and SIGTERM with a stuck client. The long run is
`python -m lab.bench.reliability --out docs/reliability.json` (docs/reliability.md).
"""

from __future__ import annotations

from lab.bench.reliability import QUICK, passed, run


def test_quick_reliability_suite():
    report = run(QUICK)
    summary = report["summary"]
    failed = [c for c in report["cases"] if not c["ok"]]
    assert not failed, failed
    assert summary["server_crashes"] == 0
    assert summary["unhandled_exceptions"] == 0, report["log_problems"]
    assert summary["lost_finals"] == 0, report["fuzz"]["good_problems"]
    assert report["fuzz"]["good_sessions"] >= 1 and report["fuzz"]["messages"] >= 600
    assert summary["storm_refused"] == 0, report["storm"]
    assert summary["slow_reader_closed"] and report["slow_reader"]["good_client_after"]
    assert summary["db_recovered"], report["db_loss"]
    assert report["sigterm"]["sessions_at_sigterm"] >= 1  # the stuck client was still there
    assert summary["sigterm_within_bound"], report["sigterm"]
    assert passed(report)
