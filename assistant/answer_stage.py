"""The server's answer stage: answers off the first-pass batch worker, with a timeout and a
circuit breaker in front of the inventory database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time

from assistant.events import ErrorCode

log = logging.getLogger(__name__)


def is_database_error(error: Exception) -> bool:
    """SQLAlchemy/DBAPI errors and OS-level connection failures count as 'database down'."""
    from sqlalchemy.exc import SQLAlchemyError

    names = {type(e).__name__ for e in (error, error.__cause__) if e is not None}
    return (
        isinstance(error, (SQLAlchemyError, ConnectionError))
        or isinstance(error.__cause__, SQLAlchemyError)
        or bool(
            names
            & {"OperationalError", "InterfaceError", "DatabaseUnavailable", "InventoryUnavailable"}
        )
    )


class CircuitBreaker:
    """Fails fast while a dependency is down: open after a timeout or `failures_to_open`
    consecutive errors, for `open_s`; then one trial call at a time (half open) until one
    succeeds. Thread-safe; `clock` is injectable for tests."""

    def __init__(
        self, failures_to_open: int = 3, open_s: float = 10.0, clock=time.monotonic
    ) -> None:
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self.clock = clock
        self._failures = 0
        self._open_until: float | None = None  # None: closed
        self._trial = False  # a half-open trial call is in flight
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._open_until is None:
                return "closed"
            return "open" if self.clock() < self._open_until else "half_open"

    def allow(self) -> bool:
        with self._lock:
            if self._open_until is None:
                return True
            if self.clock() < self._open_until or self._trial:
                return False
            self._trial = True
            return True

    def success(self) -> None:
        with self._lock:
            self._failures, self._open_until, self._trial = 0, None, False

    def failure(self, hung: bool = False) -> None:
        with self._lock:
            self._failures += 1
            self._trial = False
            if hung or self._failures >= self.failures_to_open or self._open_until is not None:
                self._open_until = self.clock() + self.open_s


DB_DOWN = (
    "the inventory database is unreachable; the transcript and intent are below, "
    "ask again in a moment"
)


class AnswerStage:
    """The answer stage of the server, off the first-pass batch worker.

    `complete(result, store)` answers a FinalResult whose later stages ran without an
    answerer: on threads of its own, within `timeout_s`, behind a CircuitBreaker. A database
    that hangs costs one timeout (the breaker opens), not one per queued final, and never
    holds up the next first-pass batch; once it answers again, answers resume by themselves.
    """

    def __init__(
        self,
        answerer,
        timeout_s: float = 3.0,
        breaker: CircuitBreaker | None = None,
        workers: int = 4,
    ) -> None:
        self.answerer = answerer
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker()
        self._slots = threading.BoundedSemaphore(workers)

    async def complete(self, result, store: str):
        """FinalResult -> the same with `answer`, its timing and its errors filled in."""
        if result.nlu is None:
            return result
        started = time.perf_counter()
        answer, error = None, None
        if not self.breaker.allow():
            error = (ErrorCode.DB_UNAVAILABLE, DB_DOWN)
        else:
            # the batch's parses of every hypothesis, when it made them: not parsed again
            parsed = {} if result.nlus is None else {"nlus": list(result.nlus)}
            call = functools.partial(
                self.answerer.answer, result.nlu, store, nbest=result.nbest, **parsed
            )
            try:
                answer = await asyncio.wait_for(self._in_thread(call), self.timeout_s)
                self.breaker.success()
            except TimeoutError:
                log.warning("inventory database did not answer within %g s", self.timeout_s)
                self.breaker.failure(hung=True)
                error = (ErrorCode.DB_UNAVAILABLE, DB_DOWN)
            except Exception as failure:
                if is_database_error(failure):
                    log.warning("inventory database unavailable: %s", failure)
                    self.breaker.failure()
                    error = (ErrorCode.DB_UNAVAILABLE, DB_DOWN)
                else:
                    log.exception("answer failed")
                    self.breaker.success()  # the database answered; the bug is ours
                    error = (ErrorCode.PIPELINE, "could not build an answer; try again")
        answer_ms = (time.perf_counter() - started) * 1000.0
        timings = dict(result.timings_ms)
        timings["answer"] = timings.get("answer", 0.0) + answer_ms
        timings["total"] = timings.get("total", 0.0) + answer_ms
        errors = result.errors + ((error,) if error else ())
        return dataclasses.replace(result, answer=answer, timings_ms=timings, errors=errors)

    def _in_thread(self, call) -> asyncio.Future:
        """Run `call` on a daemon thread of its own. Not an executor: a call stuck in a hung
        database must not hold the process at exit (executor threads are joined then), and the
        breaker keeps such threads to one per `open_s`. At most `workers` run at once; more
        wait for a slot within the caller's timeout."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(value, error) -> None:
            if not future.done():
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(value)

        def target() -> None:
            value, error = None, None
            try:
                with self._slots:
                    value = call()
            except Exception as failure:  # handed to the awaiting coroutine
                error = failure
            with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown)
                loop.call_soon_threadsafe(settle, value, error)

        threading.Thread(target=target, name="answer", daemon=True).start()
        return future

    def close(self) -> None:
        """Nothing to stop: calls still running end with their database call."""
