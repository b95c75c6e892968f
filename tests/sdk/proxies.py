"""A TCP proxy in front of the service that loses answers on demand.

The request reaches the service, which handles it and answers; the answer is swallowed and the
client's connection closed, as when a network drops between the two. Only the client's view
changes: the service, its database and its queue are the real ones.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from tests.helpers.processes import free_port


class AnswerDroppingProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dropped = 0
        self._to_drop = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def drop_next(self, answers: int = 1) -> None:
        with self._lock:
            self._to_drop = answers

    def __enter__(self) -> AnswerDroppingProxy:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                return
            upstream.settimeout(None)
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                upstream.sendall(chunk)
        _close(client, upstream)

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := upstream.recv(65536):
                if self._take_drop():
                    break
                client.sendall(chunk)
        _close(client, upstream)

    def _take_drop(self) -> bool:
        with self._lock:
            if self._to_drop <= 0:
                return False
            self._to_drop -= 1
            self.dropped += 1
            return True


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
