"""The kws.v1 subprotocol as pure functions (no I/O): parsing the router's
messages, positions, and the close-code policy of the README. The client in
client.py calls these; the tests call them directly."""

import random as _random
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Union

SUBPROTOCOL = "kws.v1"
TOKEN_SUBPROTOCOL_PREFIX = "kws.token."


class ProtocolError(ValueError):
    """A message from the router that is not kws.v1."""


class Position(NamedTuple):
    """A position: the partition and the next offset wanted."""
    partition: int
    offset: int

    def __str__(self):
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class Data:
    """A `d` message: one record."""
    partition: int
    offset: int
    body: Union[bytes, str]


@dataclass(frozen=True)
class Status:
    """An `s` message: the session's state (live, complete, incomplete)."""
    state: str
    partition: int
    offset: int


_UINT = re.compile(r"[0-9]{1,16}\Z")


def _uint(s, what, head):
    if not _UINT.match(s):
        raise ProtocolError(f"bad {what} in {head!r}")
    return int(s)


def parse_message(m: Union[bytes, bytearray, memoryview, str]) -> Union[Data, Status]:
    """Parses one kws.v1 message (str for a text frame, bytes for binary).
    Returns Data or Status; raises ProtocolError when it is not kws.v1."""
    if isinstance(m, str):
        head, nl, body = m.partition("\n")
    elif isinstance(m, (bytes, bytearray, memoryview)):
        raw = bytes(m)
        nl_at = raw.find(b"\n", 0, 129)
        if nl_at < 0:
            raise ProtocolError("message without a header line")
        head, nl, body = raw[:nl_at].decode("utf-8", "replace"), "\n", raw[nl_at + 1:]
    else:
        raise ProtocolError(f"message of unknown type {type(m).__name__}")
    if not nl:
        raise ProtocolError("message without a header line")
    f = head.split(" ")
    if f[0] == "d" and len(f) == 3:
        return Data(_uint(f[1], "partition", head), _uint(f[2], "offset", head), body)
    if f[0] == "s" and len(f) == 4:
        return Status(f[1], _uint(f[2], "partition", head), _uint(f[3], "offset", head))
    raise ProtocolError(f"unknown kws.v1 header {head[:64]!r}")


_POS = re.compile(r"([0-9]{1,10}):([0-9]{1,16})\Z")


def parse_position(v) -> Optional[Position]:
    """The Position of "p:o" (or of a (partition, offset) pair), or None when malformed."""
    if isinstance(v, (tuple, list)) and len(v) == 2:
        p, o = v
        if isinstance(p, int) and isinstance(o, int) and p >= 0 and o >= 0:
            return Position(p, o)
        return None
    if not isinstance(v, str):
        return None
    m = _POS.match(v.strip())
    if not m or int(m.group(1)) > 0x7FFFFFFF:
        return None
    return Position(int(m.group(1)), int(m.group(2)))


FATAL_CODES = {
    1007: "a text message that is not UTF-8",
    1009: "a message over the router's --max-frame-bytes",
    4001: "upstream messages are disabled on this system",
    4003: "the inbound topic does not exist on this system",
}

# Handshake statuses after which retrying cannot help: a bad id or position
# (400), an address or origin that is not allowed (403), a wrong path (404).
FATAL_STATUSES = {
    400: "the router refused the id or the position",
    403: "the router does not accept this client (origin or address)",
    404: "no WebSocket endpoint at this URL",
}


@dataclass
class Backoff:
    """Reconnect timing: min(max_s, initial_s * factor**failures), less up to
    jitter of it at random; try_again_s after 1013."""
    initial_s: float = 0.25
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    try_again_s: float = 2.0

    def delay(self, failures: int, rnd: Callable[[], float] = _random.random) -> float:
        full = min(self.max_s, self.initial_s * self.factor ** max(0, min(failures, 30)))
        return full * (1 - self.jitter * rnd())


class Decision(NamedTuple):
    action: str     # "stop" or "reconnect"
    delay_s: float
    why: str


def close_policy(code: int, failures: int, backoff: Backoff = Backoff(),
                 rnd: Callable[[], float] = _random.random) -> Decision:
    """What to do after the socket closed with `code` (README "Close codes").
    `failures`: connects in a row that brought no session (0 after one did).
      1012 draining         reconnect at once (to the next URL)
      1013 try again later  reconnect after backoff.try_again_s
      4008 slow client      reconnect at once with the position
      1007, 1009, 4001, 4003  stop
      anything else         reconnect with exponential backoff and jitter"""
    if code in FATAL_CODES:
        return Decision("stop", 0.0, FATAL_CODES[code])
    if code == 1012:
        return Decision("reconnect", backoff.delay(failures, rnd) if failures else 0.1 * rnd(),
                        "router draining")
    if code == 4008:
        return Decision("reconnect", backoff.delay(failures, rnd) if failures else 0.0,
                        "slow client")
    if code == 1013:
        return Decision("reconnect", max(backoff.try_again_s, backoff.delay(failures, rnd)),
                        "partition had no owner")
    return Decision("reconnect", backoff.delay(failures, rnd), f"closed with {code}")


def format_position(pos) -> str:
    """"p:o" for a Position or (partition, offset)."""
    return f"{pos[0]}:{pos[1]}"
