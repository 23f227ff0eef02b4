"""Entry point of the relay's child process: ``main([FD, CONFIG])``.

Started by :class:`engine.media.process.RelayProcess` (through a bootstrap that puts the
parent's package root on the path), never by hand: FD is the child's end of a socketpair,
CONFIG the JSON list ``[address, [low, high], relatch_after]``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing.connection
import sys

from engine.media.fdlimit import raise_fd_limit
from engine.media.process import serve


def main(argv: list[str]) -> None:
    # One-way commands that fail are reported here, on the stderr it shares with its parent.
    logging.basicConfig(level=logging.WARNING, format="relay %(levelname)s %(name)s: %(message)s")
    raise_fd_limit()  # 4 sockets per bridged call: the usual soft limit (1,024) is ~250 calls
    fd = int(argv[0])
    address, port_range, relatch_after = json.loads(argv[1])
    conn = multiprocessing.connection.Connection(fd)
    serve(conn, str(address), (int(port_range[0]), int(port_range[1])), float(relatch_after))


if __name__ == "__main__":
    main(sys.argv[1:])
