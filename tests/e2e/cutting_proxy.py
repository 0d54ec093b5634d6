"""A TCP proxy on 127.0.0.1 that can cut a connection after N bytes: a real network failure."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class CuttingProxy:
    target_port: int
    cut_after: int | None = None  # cut the next connection after this many bytes downstream
    # After `slow_after` bytes downstream on a connection, pass on at most `slow_rate` bytes
    # per second (a slow link), until `slow_after` is set back to None.
    slow_after: int | None = None
    slow_rate: int = 1024 * 1024
    downstream: list[int] = field(default_factory=list)  # bytes sent to the client, per connection
    _server: socket.socket | None = None

    def start(self) -> int:
        self._server = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return int(self._server.getsockname()[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            index = len(self.downstream)
            self.downstream.append(0)
            limit, self.cut_after = self.cut_after, None
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(
                target=self._pipe_down, args=(upstream, client, index, limit), daemon=True
            ).start()

    @staticmethod
    def _pipe(source: socket.socket, dest: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                dest.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                sock.close()

    def _pipe_down(
        self, source: socket.socket, dest: socket.socket, index: int, limit: int | None
    ) -> None:
        try:
            while data := source.recv(65536):
                while self.slow_after is not None and self.downstream[index] >= self.slow_after:
                    step = max(self.slow_rate // 10, 1)
                    dest.sendall(data[:step])
                    self.downstream[index] += len(data[:step])
                    data = data[step:]
                    time.sleep(0.1)
                    if not data:
                        break
                if not data:
                    continue
                if limit is not None and self.downstream[index] + len(data) > limit:
                    dest.sendall(data[: limit - self.downstream[index]])
                    self.downstream[index] = limit
                    break
                dest.sendall(data)
                self.downstream[index] += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                with_shutdown(sock)


def with_shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
