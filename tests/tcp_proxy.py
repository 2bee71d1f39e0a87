"""A TCP proxy in front of a server port that can go dark, as a failing network does.

The fault tests need a network that stops answering *without* closing
anything: a cable pulled, a VPN dropped, a firewall that drops packets. The
client's socket stays open and its kernel keeps waiting, so nothing but a
client-side timeout can end the wait. ``go_dark()`` does that: the proxy keeps
every socket open but forwards nothing in either direction (and makes new
connections wait), until ``go_light()`` delivers what was held, as TCP
retransmission would. ``cut_all()`` closes every proxied connection at once.

The proxy runs its own event loop in a daemon thread, so it keeps working
while the test's loop is blocked, between tests and for subprocesses::

    with TcpProxy("127.0.0.1", server_port) as proxy:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/app"
        proxy.go_dark()
        ...
"""

from __future__ import annotations

import asyncio
import threading

CHUNK = 65536
START_TIMEOUT = 10.0


class TcpProxy:
    """Forward 127.0.0.1:<port> to ``target_host``:``target_port``; dark or light on demand."""

    def __init__(self, target_host: str, target_port: int, *,
                 listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                         name=f"tcp-proxy-{target_port}", daemon=True)
        self._light: asyncio.Event | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._held = threading.Condition()
        self._bytes_held = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> "TcpProxy":
        """Listen on a free port (``self.port``) and start forwarding, light."""
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        """Stop listening, close every connection and the proxy's thread; idempotent."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            self._call(self._shut_down())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- faults --------------------------------------------------------------------------

    def go_dark(self) -> None:
        """Stop forwarding in both directions; sockets stay open, bytes are held back."""
        with self._held:
            self._bytes_held = 0
        self._call(_switch(self._light, on=False))

    def go_light(self) -> None:
        """Forward again, delivering whatever was held while dark."""
        self._call(_switch(self._light, on=True))

    def cut_all(self) -> None:
        """Close every proxied connection now (the listener stays); clients see a reset."""
        self._call(self._abort_connections())

    def wait_for_held_bytes(self, timeout: float) -> bool:
        """Wait until, since ``go_dark()``, a client or server has sent something that is held.

        Tells a test that a statement is really in flight on the dark network
        (sent, unanswered), without guessing with a sleep.
        """
        with self._held:
            return self._held.wait_for(lambda: self._bytes_held > 0, timeout)

    # -- inside the proxy's loop -------------------------------------------------------

    def _call(self, coroutine):
        """Run ``coroutine`` on the proxy's loop from the caller's thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(START_TIMEOUT)

    async def _listen(self) -> None:
        self._light = asyncio.Event()
        self._light.set()
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shut_down(self) -> None:
        self._server.close()
        await self._abort_connections()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _abort_connections(self) -> None:
        writers, self._writers = self._writers, set()
        for writer in writers:
            writer.transport.abort()

    async def _accept(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        """Serve one client until either side ends; cancelled quietly when the proxy closes."""
        try:
            await self._forward(client_reader, client_writer)
        except asyncio.CancelledError:
            client_writer.transport.abort()

    async def _forward(self, client_reader: asyncio.StreamReader,
                       client_writer: asyncio.StreamWriter) -> None:
        """Connect upstream (once light: a dark network also swallows new connections)."""
        self._writers.add(client_writer)
        await self._light.wait()
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.add(server_writer)
        pumps = {asyncio.ensure_future(self._pump(client_reader, server_writer)),
                 asyncio.ensure_future(self._pump(server_reader, client_writer))}
        try:
            # An end of file in one direction half-closes; an error in either ends both.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client_writer, server_writer):
                writer.transport.abort()
                self._writers.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; while dark, hold each chunk (and the end) until light again."""
        while data := await reader.read(CHUNK):
            if not self._light.is_set():
                with self._held:
                    self._bytes_held += len(data)
                    self._held.notify_all()
                await self._light.wait()
            if writer.transport.is_closing():
                return
            writer.write(data)
            await writer.drain()
        await self._light.wait()  # a closed socket's FIN is a packet too
        if not writer.transport.is_closing():
            writer.write_eof()


async def _switch(event: asyncio.Event, *, on: bool) -> None:
    """Set or clear ``event`` on its own loop (the caller waits until it is done)."""
    if on:
        event.set()
    else:
        event.clear()
