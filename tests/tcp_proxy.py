"""A TCP proxy on 127.0.0.1 that can freeze: it keeps every connection open but stops
forwarding, as a network partition behind a live load balancer or NAT does (half-open)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from types import TracebackType


class FreezingProxy:
    """Forwards 127.0.0.1:port to (host, port). `freeze_after`: bytes the server may send on
    each connection before that connection freezes (0: frozen from accept: TCP handshake done,
    not a byte forwarded). `freeze()` freezes everything from now on."""

    def __init__(self, upstream: tuple[str, int], freeze_after: int | None = None) -> None:
        self.upstream, self.freeze_after = upstream, freeze_after
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def __enter__(self) -> FreezingProxy:
        self._spawn(self._accept)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self._stop.set()
        for s in list(self._sockets):
            with contextlib.suppress(OSError):
                s.close()
        for t in self._threads:
            t.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            self._spawn(self._pump, client, server)

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        sent_to_client = 0
        while not self._stop.is_set():
            if self.frozen.is_set() or (
                self.freeze_after is not None and sent_to_client >= self.freeze_after
            ):
                self._stop.wait(0.2)  # hold both ends open, read nothing, answer nothing
                continue
            try:
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is server:
                        if self.freeze_after is not None:
                            data = data[: max(self.freeze_after - sent_to_client, 0)]
                        sent_to_client += len(data)
                        client.sendall(data)
                    else:
                        server.sendall(data)
            except OSError:
                return
