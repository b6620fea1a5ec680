"""Newline-delimited JSON messages over a socket, between the executor and its workers.

Hand-written instead of multiprocessing.connection because the worker is forked once per sample:
every megabyte it imports is copied into page tables and torn down again for every program, and
multiprocessing (with pickle and its helpers) costs two. JSON also keeps the channel free of pickle.
"""

from __future__ import annotations

import json
import os


class Channel:
    """Over a raw descriptor (one end of a socketpair): the socket module is not needed either."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""

    def fileno(self) -> int:
        return self.fd

    def send(self, message) -> None:
        data = memoryview(json.dumps(message).encode() + b"\n")
        while data:
            data = data[os.write(self.fd, data) :]

    def receive(self) -> list:
        """Every complete message that has arrived; call when the socket is readable (it blocks
        otherwise). Raises EOFError when the other side is gone."""
        data = os.read(self.fd, 1 << 16)  # a larger buffer costs an mmap per call
        if not data:
            raise EOFError("channel closed")
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line]

    def close(self) -> None:
        os.close(self.fd)
