"""A pjsua2 softphone in a subprocess, driven over line-based JSON, for media checks.

Why a subprocess: pjsua2 aborts the whole process on a C assert or when called from a thread
pjlib does not know, so pytest must never host it. The child (``main`` below, run as
``python softphone.py CONFIG_JSON``) owns the Endpoint in its main thread (``threadCnt = 0``,
``mainThreadOnly``), pumps ``libHandleEvents(10)``, and takes commands from a plain reader
thread through a queue. It keeps every Call/Account/player/recorder referenced until ``quit``
and deletes them all before ``libDestroy()`` (pjsua2 objects still alive then crash it).

Protocol, one JSON object per line:

- parent -> child: ``{"id": N, "cmd": "register" | "call" | "answer" | "hangup" | "play" |
  "record" | "stop_record" | "calls" | "quit", ...arguments}``
- child -> parent: ``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false,
  "error": "..."}``; and events ``{"event": "ready" | "reg_state" | "incoming_call" |
  "call_state" | "media_state" | "error", ...}``.

The parent side is ``Softphone`` (synchronous methods with timeouts; from trio tests wrap the
blocking ones in ``trio.to_thread.run_sync``). Audio helpers: ``write_tone_wav`` makes a test
tone with the stdlib ``wave`` module; ``read_wav``, ``rms`` and ``dominant_frequency``
(Goertzel) judge a recording.
"""

from __future__ import annotations

import array
import contextlib
import json
import logging
import math
import queue
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"

Event = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# audio helpers (parent side, stdlib only)


def write_tone_wav(
    path: Path,
    frequency: float = 700.0,
    seconds: float = 3.0,
    rate: int = 16000,
    level: float = 0.5,
) -> Path:
    """A mono 16-bit sine tone WAV."""
    count = int(seconds * rate)
    amplitude = int(32767 * level)
    samples = array.array(
        "h", (int(amplitude * math.sin(2 * math.pi * frequency * i / rate)) for i in range(count))
    )
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[list[int], int]:
    """Samples (first channel) and sample rate of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as src:
        if src.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported")
        channels = src.getnchannels()
        rate = src.getframerate()
        data = array.array("h", src.readframes(src.getnframes()))
    if sys.byteorder == "big":
        data.byteswap()
    return list(data[::channels]), rate


def wait_for_wav(path: Path, timeout: float = 5.0) -> tuple[list[int], int]:
    """``read_wav`` once the recorder finished the file.

    pjmedia removes a destroyed recorder from its conference bridge on the next clock tick,
    and only then writes the WAV header, so a recording may be incomplete for a few ms after
    the hang-up event.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            samples, rate = read_wav(path)
            if samples:
                return samples, rate
        except (wave.Error, EOFError, FileNotFoundError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not become a complete WAV in {timeout}s")
        time.sleep(0.02)


def rms(samples: Iterable[int]) -> float:
    values = list(samples)
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0


def goertzel_power(samples: list[int], rate: int, frequency: float) -> float:
    """Signal power at one frequency (Goertzel), normalised by the number of samples."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for sample in samples:
        s0 = sample + coefficient * s1 - s2
        s2, s1 = s1, s0
    return (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / max(len(samples), 1) ** 2


def dominant_frequency(
    samples: list[int], rate: int, low: float = 200.0, high: float = 3400.0, step: float = 25.0
) -> float:
    """The frequency in ``[low, high]`` (``step`` apart) with the most power."""
    candidates = [low + step * i for i in range(int((high - low) / step) + 1)]
    return max(candidates, key=lambda f: goertzel_power(samples, rate, f))


# ----------------------------------------------------------------------------------------------
# parent side


class SoftphoneError(RuntimeError):
    """The softphone refused a command or died."""


class Softphone:
    """A pjsua2 softphone subprocess listening on 127.0.0.1 (UDP).

    ``auto_answer``: None = incoming calls only ring (180); a number = answer 200 after that
    many seconds. ``play_wav``: a WAV played into every call once its media is up (looped).
    ``record``: record every call to ``<workdir>/<name>-call<ID>.wav`` (finished on hang-up).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "phone",
        auto_answer: float | None = None,
        play_wav: Path | None = None,
        record: bool = False,
        sip_port: int | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        from .harness import free_port, free_port_range

        self.name = name
        self.workdir = workdir / f"softphone-{name}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._fixed_port = sip_port is not None
        self.sip_port = sip_port or free_port("udp")
        rtp_first, rtp_last = free_port_range(40)
        self.config: dict[str, Any] = {
            "name": name,
            "sip_port": self.sip_port,
            "rtp_port": rtp_first,
            "rtp_range": rtp_last - rtp_first + 1,
            "auto_answer": auto_answer,
            "play_wav": str(play_wav) if play_wav else None,
            "record_dir": str(self.workdir) if record else None,
            "log_file": str(self.workdir / "pjsua.log"),
        }
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._replies: dict[int, Event] = {}
        self._next_id = 0
        self.returncode: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """Where to call this phone directly."""
        return f"sip:{self.name}@{LOCALHOST}:{self.sip_port}"

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.sip_port}"

    def start(self) -> Softphone:
        """Start the child; if its SIP port was taken meanwhile, retry on another free port."""
        from .harness import free_port

        for attempt in range(3):
            self._spawn()
            try:
                self.wait_event("ready", timeout=self.start_timeout)
                return self
            except SoftphoneError as exc:
                self.close()
                if self._fixed_port or attempt == 2:
                    report = self.describe()
                    raise SoftphoneError(f"softphone {self.name} did not start:\n{report}") from exc
                self.sip_port = free_port("udp")
                self.config["sip_port"] = self.sip_port
        return self

    def _spawn(self) -> None:
        with self._cond:
            self._events.clear()
            self._replies.clear()
        self.returncode = None
        self._stderr = (self.workdir / "stderr.txt").open("w")
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), json.dumps(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("softphone %s wrote a non-JSON line: %r", self.name, line)
                continue
            with self._cond:
                if "id" in message:
                    self._replies[int(message["id"])] = message
                else:
                    message["at"] = time.monotonic()
                    self._events.append(message)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self, timeout: float = 8.0) -> int | None:
        """Quit cleanly (hangs up, finishes recordings); kill if it does not exit in time."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(SoftphoneError, TimeoutError, OSError):
                self.request("quit", timeout=timeout)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._reader is not None:
            self._reader.join(2)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.returncode = process.returncode
        return self.returncode

    def __enter__(self) -> Softphone:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- commands ----------------------------------------------------------------------------

    def request(self, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
        """Send one command and wait for its reply; return its result."""
        process = self._process
        if process is None or process.stdin is None or process.poll() is not None:
            raise SoftphoneError(f"softphone {self.name} is not running")
        with self._cond:
            self._next_id += 1
            request_id = self._next_id
        process.stdin.write(json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + timeout
        with self._cond:
            while request_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"softphone {self.name}: no reply to {cmd} in {timeout}s")
                if process.poll() is not None and request_id not in self._replies:
                    raise SoftphoneError(f"softphone {self.name} died during {cmd}")
                self._cond.wait(min(left, 0.2))
            reply = self._replies.pop(request_id)
        if not reply.get("ok"):
            raise SoftphoneError(f"softphone {self.name}: {cmd} failed: {reply.get('error')}")
        return reply.get("result")

    def register(
        self,
        registrar: str,
        username: str,
        password: str,
        *,
        domain: str | None = None,
        expires: int = 300,
        timeout: float = 10.0,
    ) -> int:
        """REGISTER ``username@domain`` at ``registrar`` ("HOST:PORT"); return the final status."""
        self.request(
            "register",
            registrar=registrar,
            username=username,
            password=password,
            domain=domain or registrar.rsplit(":", 1)[0],
            expires=expires,
        )
        event = self.wait_event("reg_state", timeout=timeout, predicate=lambda e: e["code"] >= 200)
        return int(event["code"])

    def call(self, uri: str) -> int:
        """Place a call; returns the call id used by the other commands and events."""
        return int(self.request("call", uri=uri))

    def answer(self, call: int, code: int = 200) -> None:
        self.request("answer", call=call, code=code)

    def hangup(self, call: int | None = None) -> None:
        """Hang up one call, or every call."""
        self.request("hangup", call=call)

    def play(self, call: int, wav: Path) -> None:
        self.request("play", call=call, wav=str(wav))

    def record(self, call: int, path: Path) -> None:
        self.request("record", call=call, path=str(path))

    def stop_record(self, call: int) -> Path:
        """Finish a recording (the WAV header is complete only now); return its path."""
        return Path(self.request("stop_record", call=call))

    def dial_dtmf(self, call: int, digits: str) -> None:
        """Send ``digits`` as RFC 4733 telephone-events (the receiver gets ``dtmf`` events)."""
        self.request("dial_dtmf", call=call, digits=digits)

    def calls(self) -> list[Event]:
        return list(self.request("calls"))

    # -- events ------------------------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[Event]:
        with self._cond:
            return [e for e in self._events if kind is None or e.get("event") == kind]

    def wait_event(
        self,
        kind: str,
        timeout: float = 10.0,
        predicate: Callable[[Event], bool] | None = None,
        **match: Any,
    ) -> Event:
        """The first event of ``kind`` whose fields equal ``match`` (and pass ``predicate``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events:
                    if (
                        event.get("event") == kind
                        and all(event.get(k) == v for k, v in match.items())
                        and (predicate is None or predicate(event))
                    ):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"softphone {self.name}: no {kind} {match} in {timeout}s")
                if not self.running:
                    raise SoftphoneError(f"softphone {self.name} died waiting for {kind}")
                self._cond.wait(min(left, 0.2))

    def wait_call_state(self, call: int, state: str, timeout: float = 10.0) -> Event:
        """Wait for a call to reach ``state`` ("EARLY", "CONFIRMED", "DISCONNECTED", ...)."""
        return self.wait_event("call_state", timeout=timeout, call=call, state=state)

    def wait_incoming(self, timeout: float = 10.0) -> Event:
        return self.wait_event("incoming_call", timeout=timeout)

    def describe(self) -> str:
        log = self.workdir / "pjsua.log"
        stderr = self.workdir / "stderr.txt"
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
        err = stderr.read_text(errors="replace")[-2000:] if stderr.exists() else ""
        events = "\n".join(json.dumps(e) for e in self.events())
        return (
            f"config: {json.dumps(self.config)}\nexit code: {self.returncode}\n"
            f"--- events ---\n{events}\n--- stderr ---\n{err}\n--- pjsua log (tail) ---\n{tail}"
        )


# ----------------------------------------------------------------------------------------------
# child side: everything below runs only in the subprocess


class _Child:
    """The softphone process: one thread owns pjsua2, commands arrive through a queue."""

    def __init__(self, config: dict[str, Any]) -> None:
        import pjsua2 as pj  # type: ignore[import-untyped]

        self.pj = pj
        self.config = config
        self.commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.calls: dict[int, Any] = {}
        self.accounts: list[Any] = []
        self.players: dict[int, Any] = {}
        self.recorders: dict[int, tuple[Any, str]] = {}
        self.keep: list[Any] = []  # finished calls, players: deleted only before libDestroy
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.running = True

        self.ep = pj.Endpoint()
        self.ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = 4
        ep_cfg.uaConfig.userAgent = f"trio-b2bua-test-softphone/{config['name']}"
        ep_cfg.logConfig.level = 5
        ep_cfg.logConfig.consoleLevel = 0
        ep_cfg.logConfig.filename = config["log_file"]
        ep_cfg.medConfig.noVad = True
        self.ep.libInit(ep_cfg)
        transport = pj.TransportConfig()
        transport.port = int(config["sip_port"])
        transport.boundAddress = LOCALHOST
        transport.publicAddress = LOCALHOST
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self.local = self._make_account(f"sip:{config['name']}@{LOCALHOST}:{config['sip_port']}")

    # -- output ------------------------------------------------------------------------------

    def emit(self, message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    # -- pjsua2 objects ----------------------------------------------------------------------

    def _account_config(self, id_uri: str) -> Any:
        pj = self.pj
        cfg = pj.AccountConfig()
        cfg.idUri = id_uri
        cfg.mediaConfig.lockCodecEnabled = False
        cfg.mediaConfig.transportConfig.port = int(self.config["rtp_port"])
        cfg.mediaConfig.transportConfig.portRange = int(self.config["rtp_range"])
        cfg.mediaConfig.transportConfig.boundAddress = LOCALHOST
        cfg.mediaConfig.transportConfig.publicAddress = LOCALHOST
        cfg.natConfig.iceEnabled = False
        cfg.natConfig.sipOutboundUse = 0
        cfg.natConfig.contactRewriteUse = 0
        cfg.natConfig.viaRewriteUse = 0
        cfg.natConfig.sdpNatRewriteUse = 0
        return cfg

    def _make_account(self, id_uri: str, cfg: Any | None = None) -> Any:
        child = self
        pj = self.pj

        class Account(pj.Account):  # type: ignore[misc, name-defined]
            def onRegState(self, prm: Any) -> None:
                info = self.getInfo()
                child.emit(
                    {
                        "event": "reg_state",
                        "account": info.uri,
                        "code": int(prm.code),
                        "reason": str(prm.reason),
                        "expiration": int(prm.expiration),
                    }
                )

            def onIncomingCall(self, prm: Any) -> None:
                child.incoming(self, int(prm.callId))

        account = Account()
        account.create(cfg or self._account_config(id_uri))
        self.accounts.append(account)
        return account

    def _new_call(self, account: Any, call_id: int | None = None) -> Any:
        child = self
        pj = self.pj

        class Call(pj.Call):  # type: ignore[misc, name-defined]
            def onCallState(self, prm: Any) -> None:
                child.call_state(self)

            def onCallMediaState(self, prm: Any) -> None:
                child.media_state(self)

            def onDtmfDigit(self, prm: Any) -> None:
                child.emit(
                    {
                        "event": "dtmf",
                        "call": self.getId(),
                        "digit": str(prm.digit),
                        "method": "info"
                        if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO
                        else "rfc2833",
                    }
                )

        if call_id is None:
            return Call(account)
        return Call(account, call_id)

    # -- callbacks (main thread, inside libHandleEvents) --------------------------------------

    def incoming(self, account: Any, call_id: int) -> None:
        call = self._new_call(account, call_id)
        info = call.getInfo()
        self.calls[info.id] = call
        self.emit(
            {
                "event": "incoming_call",
                "call": info.id,
                "remote_uri": info.remoteUri,
                "remote_contact": info.remoteContact,
                "local_uri": info.localUri,
            }
        )
        self._answer(call, 180)
        delay = self.config.get("auto_answer")
        if delay is not None:
            self.timers.append((time.monotonic() + float(delay), lambda: self._answer(call, 200)))

    def _answer(self, call: Any, code: int) -> None:
        prm = self.pj.CallOpParam()
        prm.statusCode = code
        try:
            call.answer(prm)
        except self.pj.Error as exc:
            self.emit({"event": "error", "where": f"answer {code}", "error": exc.info()})

    def call_state(self, call: Any) -> None:
        info = call.getInfo()
        recording = None
        if info.state == self.pj.PJSIP_INV_STATE_DISCONNECTED:
            recording = self._finish_recording(info.id)  # complete before anyone reads it
            player = self.players.pop(info.id, None)
            if player is not None:
                self.keep.append(player)
            self.keep.append(self.calls.pop(info.id, call))
        self.emit(
            {
                "event": "call_state",
                "call": info.id,
                "state": str(info.stateText),
                "code": int(info.lastStatusCode),
                "reason": str(info.lastReason),
                "remote_uri": info.remoteUri,
                "recording": recording,
            }
        )

    def media_state(self, call: Any) -> None:
        pj = self.pj
        info = call.getInfo()
        active = False
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                active = True
                audio = call.getAudioMedia(media.index)
                wav = self.config.get("play_wav")
                if wav and info.id not in self.players:
                    self._play(info.id, audio, wav)
                record_dir = self.config.get("record_dir")
                if record_dir and info.id not in self.recorders:
                    name = f"{self.config['name']}-call{info.id}.wav"
                    self._record(info.id, audio, str(Path(record_dir) / name))
        self.emit({"event": "media_state", "call": info.id, "active": active})

    def _play(self, call_id: int, audio: Any, wav: str) -> None:
        player = self.pj.AudioMediaPlayer()
        player.createPlayer(wav)
        player.startTransmit(audio)
        self.players[call_id] = player

    def _record(self, call_id: int, audio: Any, path: str) -> None:
        recorder = self.pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        audio.startTransmit(recorder)
        self.recorders[call_id] = (recorder, path)

    def _finish_recording(self, call_id: int) -> str | None:
        entry = self.recorders.pop(call_id, None)
        if entry is None:
            return None
        recorder, path = entry
        del recorder  # the WAV header is written when the recorder is destroyed
        entry = None
        return path

    def _audio(self, call_id: int) -> Any:
        call = self.calls.get(call_id)
        if call is None:
            raise ValueError(f"no live call {call_id}")
        info = call.getInfo()
        for media in info.media:
            if (
                media.type == self.pj.PJMEDIA_TYPE_AUDIO
                and media.status == self.pj.PJSUA_CALL_MEDIA_ACTIVE
            ):
                return call.getAudioMedia(media.index)
        raise ValueError(f"call {call_id} has no active audio")

    # -- commands ----------------------------------------------------------------------------

    def handle(self, command: dict[str, Any]) -> Any:
        pj = self.pj
        cmd = command.get("cmd")
        if cmd == "register":
            user, domain = command["username"], command["domain"]
            cfg = self._account_config(f"sip:{user}@{domain}")
            cfg.regConfig.registrarUri = f"sip:{command['registrar']}"
            cfg.regConfig.timeoutSec = int(command.get("expires", 300))
            cfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", user, 0, command["password"])
            )
            self._make_account(cfg.idUri, cfg)
            return None
        if cmd == "call":
            call = self._new_call(self.accounts[-1])
            prm = pj.CallOpParam(True)
            prm.opt.videoCount = 0
            call.makeCall(command["uri"], prm)
            call_id = call.getInfo().id
            self.calls[call_id] = call
            return call_id
        if cmd == "answer":
            call = self.calls.get(int(command["call"]))
            if call is None:
                raise ValueError(f"no live call {command['call']}")
            self._answer(call, int(command.get("code", 200)))
            return None
        if cmd == "hangup":
            wanted = command.get("call")
            for call_id, call in list(self.calls.items()):
                if wanted is None or call_id == int(wanted):
                    with contextlib.suppress(pj.Error):
                        call.hangup(pj.CallOpParam())
            return None
        if cmd == "play":
            self._play(int(command["call"]), self._audio(int(command["call"])), command["wav"])
            return None
        if cmd == "record":
            self._record(int(command["call"]), self._audio(int(command["call"])), command["path"])
            return None
        if cmd == "stop_record":
            path = self._finish_recording(int(command["call"]))
            if path is None:
                raise ValueError(f"call {command['call']} is not being recorded")
            return path
        if cmd == "dial_dtmf":  # RFC 2833/4733 telephone-events in the call's RTP
            call = self.calls.get(int(command["call"]))
            if call is None:
                raise ValueError(f"no live call {command['call']}")
            call.dialDtmf(str(command["digits"]))
            return None
        if cmd == "calls":
            out = []
            for call_id, call in self.calls.items():
                info = call.getInfo()
                out.append({"call": call_id, "state": str(info.stateText)})
            return out
        if cmd == "quit":
            self.running = False
            return None
        raise ValueError(f"unknown command {cmd!r}")

    def run(self) -> None:
        reader = threading.Thread(target=self._read_stdin, daemon=True)
        reader.start()
        self.emit({"event": "ready", "sip_port": self.config["sip_port"]})
        while self.running:
            self.ep.libHandleEvents(10)
            now = time.monotonic()
            due = [t for t in self.timers if t[0] <= now]
            self.timers = [t for t in self.timers if t[0] > now]
            for _, action in due:
                action()
            while True:
                try:
                    command = self.commands.get_nowait()
                except queue.Empty:
                    break
                if command is None:  # stdin closed: the parent is gone
                    self.running = False
                    break
                self._dispatch(command)
        self.shutdown()

    def _dispatch(self, command: dict[str, Any]) -> None:
        try:
            result = self.handle(command)
        except self.pj.Error as exc:
            self.emit({"id": command.get("id"), "ok": False, "error": exc.info()})
        except (KeyError, ValueError, TypeError) as exc:
            self.emit({"id": command.get("id"), "ok": False, "error": repr(exc)})
        else:
            self.emit({"id": command.get("id"), "ok": True, "result": result})

    def _read_stdin(self) -> None:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                self.commands.put(json.loads(line))
            except json.JSONDecodeError as exc:
                self.emit({"event": "error", "where": "stdin", "error": repr(exc)})
        self.commands.put(None)

    def shutdown(self) -> None:
        pj = self.pj
        for call in list(self.calls.values()):
            with contextlib.suppress(pj.Error):
                call.hangup(pj.CallOpParam())
        deadline = time.monotonic() + 2
        while self.calls and time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
        for call_id in list(self.recorders):
            self._finish_recording(call_id)
        self.players.clear()
        self.calls.clear()
        self.keep.clear()
        for account in self.accounts:
            with contextlib.suppress(pj.Error):
                account.shutdown()
        self.accounts.clear()
        self.local = None
        self.ep.libHandleEvents(50)
        self.ep.libDestroy()
        self.ep = None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: softphone.py CONFIG_JSON\n")
        return 2
    config = json.loads(argv[1])
    child = _Child(config)
    child.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
