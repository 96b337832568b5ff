"""An open-loop HTTP load: each request goes out at its scheduled time, whatever the answers.

A closed loop (send, wait for the answer, send the next) slows down with the server and so
hides its queueing ("coordinated omission"). Here a scheduler starts request i at
`start + i / rate` on whichever of a fixed set of keep-alive connections is free; when
none is free the request waits for one, and that wait is counted in its latency, which
runs from the scheduled time to the answer.

The client speaks HTTP/1.1 over asyncio streams by hand: a general client (httpx) costs
1-3 ms of CPU per request, which on a 2-core machine would take a core from the pipeline
it is measuring; this costs tens of microseconds.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Sent:
    """One request: when it was due, when a connection took it, when it was answered."""

    scheduled: float
    started: float = 0.0
    done: float = 0.0
    status: int = 0  # 0: no answer (connection lost or refused)


class RawConnection:
    """One keep-alive HTTP/1.1 connection; requests must carry a Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> int:
        """Sends one request; the answer's status (its body is read and dropped)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        try:
            self._writer.write(data)
            head = await self._reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)]) if at >= 0 else 0
            if length:
                await self._reader.readexactly(length)
            if b"\r\nconnection: close" in lower:
                self.close()
            return int(head[9:12])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def post_request(host: str, path: str, key: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/cloudevents+json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class OpenLoop:
    """Connections shared by every step of a run; `run` sends at one rate for a while."""

    def __init__(self, host: str, port: int, connections: int) -> None:
        self._idle: asyncio.Queue[RawConnection] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(RawConnection(host, port))
        self._tasks: set[asyncio.Task[None]] = set()

    async def _send(self, sent: Sent, data: bytes) -> None:
        connection = await self._idle.get()
        sent.started = time.time()
        try:
            sent.status = await connection.request(data)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            sent.status = 0
        finally:
            sent.done = time.time()
            self._idle.put_nowait(connection)

    async def run(self, rate: float, seconds: float, render: Callable[[float], bytes | None]) -> list[Sent]:
        """Requests at `rate` per second for `seconds`; `render(scheduled)` gives the next
        request (None: no more). Returns at once after the last is due: answers still
        outstanding fill in their `Sent` later (see `settle`)."""
        out: list[Sent] = []
        start = time.time()
        total = int(rate * seconds)
        for i in range(total):
            due = start + i / rate
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif i % 8 == 0:
                await asyncio.sleep(0)  # behind schedule: still let the answers be read
            data = render(due)
            if data is None:
                break
            sent = Sent(scheduled=due)
            out.append(sent)
            task = asyncio.create_task(self._send(sent, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return out

    async def settle(self, timeout_s: float = 60) -> None:
        """Waits for every outstanding answer."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
