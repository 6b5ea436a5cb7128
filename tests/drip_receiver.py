"""A hostile receiver on 127.0.0.1: it reads the request, then sends its response one byte per second (a
"slow loris" that never lets a per-read timeout fire). Counts the requests it got."""
from __future__ import annotations

import socket
import threading
import time


class DripReceiver:
    def __init__(self, interval: float = 1.0, response: bytes = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" + b" " * 120):
        self.interval, self.response = interval, response
        self.requests = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/drip"
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> "DripReceiver":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                with self._lock:
                    self.requests += 1
                for byte in self.response:
                    if self._stop.wait(self.interval):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return


def dead_url() -> str:
    """A 127.0.0.1 URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/dead"
