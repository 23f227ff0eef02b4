"""The relay's port table: which even RTP ports (and RTP+1 for RTCP) it holds, and binding them."""

from __future__ import annotations

import errno
import socket

from engine.media import fdlimit
from engine.media.errors import DescriptorsExhausted, MediaError, PortRangeExhausted


class PortTable:
    """Binds RTP/RTCP socket pairs from ``first_port``..``last_port`` on one address, round
    robin (a port freed a moment ago is the last to be used again). Not thread-safe: the relay
    calls it under its lock."""

    def __init__(self, address: str, family: int, lo: int, hi: int) -> None:
        self.address = address
        self.family = family
        self.first_port = lo + (lo & 1)
        self.last_port = hi
        self._cursor = self.first_port
        self.used: set[int] = set()

    @property
    def pairs(self) -> int:
        """How many RTP/RTCP pairs the range holds."""
        return (self.last_port - self.first_port + 1) // 2

    def release(self, port: int) -> None:
        self.used.discard(port)

    def bind_pair(self) -> tuple[socket.socket, socket.socket, int]:
        """Two non-blocking sockets bound on a free even port and the next, and that port."""
        for _ in range(self.pairs):
            port = self._cursor
            self._cursor += 2
            if self._cursor + 1 > self.last_port:
                self._cursor = self.first_port
            if port in self.used:
                continue
            rtp = self._bind(port)
            if rtp is None:
                continue
            try:
                rtcp = self._bind(port + 1)
            except MediaError:
                rtp.close()
                raise
            if rtcp is None:
                rtp.close()
                continue
            self.used.add(port)
            return rtp, rtcp, port
        raise PortRangeExhausted(
            f"no free RTP/RTCP port pair in {self.first_port}-{self.last_port} on "
            f"{self.address} ({len(self.used)} pairs in use by this relay)"
        )

    def _bind(self, port: int) -> socket.socket | None:
        try:
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise DescriptorsExhausted(fdlimit.exhausted_message()) from None
            if exc.errno == errno.ENFILE:
                raise DescriptorsExhausted(
                    "the system's file table is full (ENFILE): raise fs.file-max or stop what "
                    "holds the files"
                ) from None
            raise MediaError(f"cannot make a socket: {exc}") from None
        try:
            sock.bind((self.address, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None
            raise MediaError(f"cannot bind {self.address}:{port}: {exc}") from None
        sock.setblocking(False)
        return sock
