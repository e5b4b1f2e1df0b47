"""An AssistantServer inside a Python process (tests, benchmarks): its event loop on a thread.

with ServerThread(AssistantServer(ServerConfig(port=0), pipeline=pipeline)) as st:
    connect(st.url)   # ws://127.0.0.1:PORT/ws
"""

from __future__ import annotations

import asyncio
import threading


class ServerThread:
    """An AssistantServer running in its own event loop thread; `call` runs a coroutine there."""

    def __init__(self, server) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        self.call(self.server.start())
        return self

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def __exit__(self, *exc) -> None:
        self.call(self.server.shutdown())
        self.call(_cancel_others())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _cancel_others() -> None:
    """Cancel what is left on the loop (handshakes of rejected connections) and wait."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
