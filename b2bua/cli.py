"""The ``b2bua`` command: ``serve``, ``demo`` and ``check-config``.

Exit codes: 0 success (also after Ctrl-C/SIGTERM: the server drains, then exits); 1 the demo
call did not behave as the sandbox numbers promise, the store cannot be opened or the relay
process died; 2 bad usage, a bad config/directory file (one line per problem, naming the key)
or a listener that cannot be opened (``b2bua: cannot listen on sip udp 127.0.0.1:5060: address
already in use``). Each failure is one ``b2bua: ...`` line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TextIO

import trio

from engine.config import load_config
from engine.config_model import Config, ConfigError, default_config
from engine.directory import DirectoryError

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "trio-b2bua: a SIP back-to-back user agent with a VoipNow UnifiedAPI click-to-call facade."
)
DISTRIBUTION = "trio-b2bua"


def version() -> str:
    """The installed package's version; from a source tree that is not installed, the one in
    its pyproject.toml; else "unknown"."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text("utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "unknown"
    found = project.get("version") if project.get("name") == DISTRIBUTION else None
    return found if isinstance(found, str) else "unknown"


def _verbosity(dest: str, default: object) -> argparse.ArgumentParser:
    """``-v/--verbose`` for the main parser and (under another ``dest``, so neither
    overwrites the other) for each sub-command: ``b2bua -v serve`` = ``b2bua serve -v``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v",
        "--verbose",
        dest=dest,
        action="count",
        default=default,
        help="more logging (-v info, -vv debug)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="b2bua", description=DESCRIPTION, parents=[_verbosity("verbose", 0)]
    )
    parser.add_argument("--version", action="version", version=f"b2bua {version()}")
    sub_verbose = _verbosity("sub_verbose", 0)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser(
        "serve",
        parents=[sub_verbose],
        help="run SIP, the RTP relay and the HTTP API in one process",
        description=(
            "Run SIP signalling, the RTP relay and the UAPI HTTP API in one trio run. Without "
            "--config: SIP on 127.0.0.1:5060 UDP+TCP, API on http://127.0.0.1:8080, SQLite store "
            "b2bua.sqlite in the current folder, and the built-in demo directory. A listener "
            "with port 0 prints its real address ('listening sip udp 127.0.0.1:PORT'). "
            "SIGINT/SIGTERM (Ctrl-C) drain: new calls get 503, live calls are hung up, then "
            "exit 0; a second one stops at once. If the relay process dies the server drains "
            "the same way and exits 1. A port that cannot be opened: one line naming it, exit 2."
        ),
    )
    serve.add_argument("--config", metavar="FILE", type=Path, help="TOML configuration file")
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="log lines as text (default) or one JSON object per line (ts, level, logger, msg, "
        "call); INFO by default, -v adds the SIP stack's INFO lines, -vv is DEBUG",
    )

    demo = commands.add_parser(
        "demo",
        parents=[sub_verbose],
        help="start a server on free ports and place a sandbox-to-sandbox call",
        description=(
            "The main job in one command: start the server on the embedded default (free ports, "
            "a temporary store), get an OAuth token, place a Simple PhoneCall between two sandbox "
            "numbers, show each party's progress live and print the final record. Exit 0 when "
            "the call behaved as the sandbox numbers promise, 1 when not; Ctrl-C hangs up, "
            "drains and exits 0. Takes sandbox numbers only: 0003*00-0003*09."
        ),
    )
    demo.add_argument(
        "--source", default="0003*00", help="a sandbox number, 0003*00-0003*09 (default 0003*00)"
    )
    demo.add_argument(
        "--destination",
        default="0003*01",
        help="a sandbox number, 0003*00-0003*09 (default 0003*01)",
    )
    demo.add_argument(
        "--duration",
        type=_demo_duration,
        default=5,
        help="callDuration in seconds, 1-180 (default 5; sandbox calls end after 3 minutes)",
    )

    check = commands.add_parser(
        "check-config",
        parents=[sub_verbose],
        help="validate a configuration file (and its directory) and exit",
        description="Load FILE and its directory file; print every problem of both, one "
        "line each naming the file and the key; exit 2 on any problem, 0 when both are valid.",
    )
    check.add_argument("config", metavar="FILE", type=Path)
    return parser


def _demo_duration(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if not 1 <= seconds <= 180:
        raise argparse.ArgumentTypeError(f"{seconds} is not between 1 and 180 seconds")
    return seconds


def _setup_logging(verbosity: int, log_format: str = "text", *, server: bool = False) -> None:
    from b2bua.logs import setup_logging

    setup_logging(verbosity, log_format, server=server)


def _load(path: Path | None) -> Config:
    if path is None:
        return default_config()
    return load_config(path)


def _say_error(error: BaseException) -> None:
    """One ``b2bua: ...`` line per problem (config and directory errors list several)."""
    for line in str(error).splitlines() or [type(error).__name__]:
        _write_line(sys.stderr, f"b2bua: {line}")


def _write_line(stream: TextIO, line: str) -> None:
    """``line`` in one write: ``serve``'s log thread writes its lines at any moment, and
    ``print`` writes the text and its newline apart (two system calls when the stream is
    unbuffered), so a log line could land inside a ``listening ...`` line that a supervisor
    reads when stdout and stderr share a pipe."""
    stream.write(line + "\n")
    stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(
        args.verbose + args.sub_verbose,
        getattr(args, "log_format", "text"),
        server=args.command == "serve",
    )
    try:
        if args.command == "serve":
            return _serve(args.config, args.log_format)
        if args.command == "check-config":
            return _check_config(args.config)
        if args.command == "demo":
            return _demo(args.source, args.destination, args.duration)
    except (ConfigError, DirectoryError, OSError) as exc:  # OSError: ListenError among others
        _say_error(exc)
        return 2
    except KeyboardInterrupt:  # before the server's own signal handling is up: nothing to drain
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


def _serve(path: Path | None, log_format: str = "text") -> int:
    config = _checked(path)
    if config is None:
        return 2
    from b2bua.listen import ListenError
    from b2bua.server import ServerFailed, serve
    from engine.media.fdlimit import raise_fd_limit
    from engine.store import StoreError

    # SIP over TCP and HTTP connections take descriptors too (the relay raises its own)
    raise_fd_limit()

    def announce(line: str) -> None:
        if log_format == "json" and not line.startswith("listening "):
            logger.info("%s", line)  # after the listening lines, only JSON lines
            return
        _write_line(sys.stdout, line)

    try:
        trio.run(lambda: serve(config, announce=announce))
    except (ServerFailed, StoreError) as exc:  # the relay process died (drained), no store
        _say_error(exc)
        return 1
    except BaseExceptionGroup as group:
        return _from_group(group, {ListenError: 2, ServerFailed: 1, StoreError: 1})
    return 0


def _demo(source: str, destination: str, duration: int) -> int:
    from b2bua.demo import run_demo, sandbox_index
    from b2bua.listen import ListenError
    from b2bua.server import ServerFailed

    for option, number in (("--source", source), ("--destination", destination)):
        try:
            sandbox_index(number)
        except ValueError as exc:
            print(f"b2bua: demo {option}: {exc}", file=sys.stderr)
            return 2
    try:
        return trio.run(run_demo, source, destination, duration)
    except (ServerFailed, ListenError) as exc:
        _say_error(exc)
        return 1 if isinstance(exc, ServerFailed) else 2
    except BaseExceptionGroup as group:  # the demo runs serve() in a nursery
        return _from_group(group, {ListenError: 2, ServerFailed: 1})


def _from_group(group: BaseExceptionGroup, codes: dict[type[BaseException], int]) -> int:
    """The exit code for a failure that a nursery wrapped in a group: the first known error
    is reported; a group of nothing but Ctrl-C (during start-up) is a quiet exit 0; anything
    else is a bug and is raised."""
    for kind, code in codes.items():
        found = group.subgroup(kind)
        if found is not None:
            _say_error(_first(found))
            return code
    _, rest = group.split(KeyboardInterrupt)
    if rest is None:
        return 0
    raise group


def _check_config(path: Path) -> int:
    if _checked(path) is None:
        return 2
    print(f"{path}: ok")
    return 0


def _checked(path: Path | None) -> Config | None:
    """The config of ``path`` (the embedded default for None) once it and its directory file
    are found good; else None, after one ``b2bua: FILE: KEY: PROBLEM`` line per problem of
    either file and a count."""
    from b2bua.server import load_directory_for

    lines: list[str] = []
    config: Config | None = None
    try:
        config = _load(path)
    except ConfigError as exc:
        lines += [_where(str(path), key, problem) for key, problem in exc.problems]
        config = exc.config  # the good part: its directory file is still worth checking
    if config is not None:
        try:
            load_directory_for(config)
        except DirectoryError as exc:
            if exc.file is not None:
                exc.file = _shown(exc.file)
            lines += str(exc).splitlines()
    if not lines:
        return config
    for line in lines:
        print(f"b2bua: {line}", file=sys.stderr)
    count = len(lines)
    print(f"b2bua: {count} problem{'s' * (count != 1)}", file=sys.stderr)
    return None


def _shown(path: str) -> str:
    """``path`` relative to the current folder when it is below it (as a user would type it)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _where(file: str, key: str, problem: str) -> str:
    return f"{key}: {problem}" if key == file else f"{file}: {key}: {problem}"


def _first(error: BaseException) -> BaseException:
    """The first leaf of an exception group (the error itself if it is not a group)."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
