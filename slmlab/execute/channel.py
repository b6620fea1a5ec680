"""Length-prefixed marshal messages over a socket, between the executor and its workers.

Hand-written instead of multiprocessing.connection because every module a worker imports is copied
into its zygote and torn down again with every sample it forks, and multiprocessing (with pickle and
its helpers) costs two megabytes. marshal encodes the messages (tuples, dicts, strings, numbers) in
one C call each way, several times faster than JSON, and unlike pickle it builds data, never objects
of arbitrary classes. Only the executor and its own workers hold the two ends: the socket is closed in
the zygote, so no sandboxed program can write to it.
"""

from __future__ import annotations

import marshal
import os

_HEADER = 4  # little-endian length of the message that follows


class Channel:
    """Over a raw descriptor (one end of a socketpair): the socket module is not needed either."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""

    def fileno(self) -> int:
        return self.fd

    def send(self, message) -> None:
        data = marshal.dumps(message)
        view = memoryview(len(data).to_bytes(_HEADER, "little") + data)
        while view:
            view = view[os.write(self.fd, view) :]

    def receive(self) -> list:
        """Every complete message that has arrived; call when the socket is readable (it blocks
        otherwise). Raises EOFError when the other side is gone."""
        data = os.read(self.fd, 1 << 16)  # a larger buffer costs an mmap per call
        if not data:
            raise EOFError("channel closed")
        buffer = self.buffer + data
        messages, start = [], 0
        while len(buffer) - start >= _HEADER:
            end = start + _HEADER + int.from_bytes(buffer[start : start + _HEADER], "little")
            if end > len(buffer):
                break
            messages.append(marshal.loads(buffer[start + _HEADER : end]))
            start = end
        self.buffer = buffer[start:]
        return messages

    def close(self) -> None:
        os.close(self.fd)
