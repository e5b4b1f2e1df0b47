"""The queue all sessions share: finals that end together are decoded in one batch.

batcher = FinalBatcher(pipeline.finals)          # run_batch: [FinalRequest] -> [FinalResult]
result, wait_ms = await batcher.submit(request)  # in a session's task
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from assistant.metrics import Metrics
from assistant.pipeline import FinalRequest, FinalResult

log = logging.getLogger(__name__)


class FinalBatcher:
    """Collects the finals of concurrent sessions and runs them as one batch in a thread.

    A request waits at most `max_wait_s` for company. With `max_in_flight` 1 (static
    batching), one batch runs at a time and new requests queue up for the next one (the
    model shares the cores). With more (continuous batching: the first pass merges work
    from concurrent calls itself, e.g. asr.torch_continuous), batches are dispatched at
    once, up to that many in flight, on threads of their own, so that a final never waits
    for another final's later stages (or for the default executor's other users).
    """

    def __init__(
        self,
        run_batch: Callable[[list[FinalRequest]], list[FinalResult]],
        max_wait_s: float = 0.005,
        max_batch: int = 8,
        metrics: Metrics | None = None,
        max_in_flight: int = 1,
    ) -> None:
        self.run_batch = run_batch
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self.metrics = metrics
        self.max_in_flight = max_in_flight  # may be changed until the first request
        self._queue: asyncio.Queue[tuple[FinalRequest, asyncio.Future, float]] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._task is None:
            if self.max_in_flight > 1 and self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_in_flight, "finals")
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, request: FinalRequest) -> tuple[FinalResult, float]:
        """-> (result, milliseconds spent waiting for the batch to start)."""
        self.start()
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((request, future, time.perf_counter()))
        return await future

    async def _loop(self) -> None:
        while True:
            while len(self._running) >= self.max_in_flight:
                await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            batch = [await self._queue.get()]
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.max_batch:
                timeout = deadline - time.perf_counter()
                try:
                    batch.append(
                        self._queue.get_nowait()
                        if timeout <= 0
                        else await asyncio.wait_for(self._queue.get(), timeout)
                    )
                except (asyncio.QueueEmpty, TimeoutError):
                    break
            batch = [item for item in batch if not item[1].cancelled()]  # clients gone
            if not batch:
                continue
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[FinalRequest, asyncio.Future, float]]) -> None:
        started = time.perf_counter()
        if self.metrics:
            self.metrics.batch(len(batch))
        requests = [r for r, _, _ in batch]
        try:
            if self._executor is None:
                results = await asyncio.to_thread(self.run_batch, requests)
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._executor, self.run_batch, requests)
        except Exception as error:  # one bad batch must not stop the queue
            log.exception("final batch failed")
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future, queued), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result((result, (started - queued) * 1000.0))
