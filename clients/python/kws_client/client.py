"""The kws.v1 client: connects, keeps the position, reconnects with backoff
and jitter presenting the position, follows the README's close-code policy,
asks for a fresh token before every connect, can store the position, and
sends upstream with the socket's own back-pressure. Built on the
`websockets` package (10.4, Debian 12's, and later versions)."""

import asyncio
import inspect
import json
import os
import tempfile
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Union
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websockets

from .protocol import (FATAL_STATUSES, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, Backoff, Data,
                       Position, ProtocolError, Status, close_policy, parse_message,
                       parse_position)

_WS_MAJOR = int(websockets.__version__.split(".")[0])


class Stopped(Exception):
    """The client stopped for good: a close code (1007, 1009, 4001, 4003) or a
    handshake status (400, 403, 404) after which reconnecting cannot help."""

    def __init__(self, code: int, reason: str, why: str):
        super().__init__(f"{why} ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason
        self.why = why


class Record:
    """One record: its partition, offset and value."""

    __slots__ = ("partition", "offset", "_body")

    def __init__(self, partition: int, offset: int, body: Union[bytes, str]):
        self.partition = partition
        self.offset = offset
        self._body = body

    @property
    def data(self) -> bytes:
        """The value as bytes."""
        return self._body.encode() if isinstance(self._body, str) else self._body

    @property
    def text(self) -> str:
        """The value as text (UTF-8)."""
        return self._body if isinstance(self._body, str) else self._body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def next(self) -> Position:
        """The position after this record: what a resume presents."""
        return Position(self.partition, self.offset + 1)

    def __repr__(self):
        return f"Record({self.partition}:{self.offset}, {self._body[:40]!r})"


class MemoryStorage:
    """Position storage in a dict."""

    def __init__(self):
        self.values: Dict[str, str] = {}

    def get(self, key: str) -> Optional[str]:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value

    def remove(self, key: str) -> None:
        self.values.pop(key, None)


class FileStorage:
    """Position storage in a JSON file, replaced atomically on each change."""

    def __init__(self, path: str):
        self.path = path

    def _load(self) -> Dict[str, str]:
        try:
            with open(self.path) as f:
                v = json.load(f)
            return v if isinstance(v, dict) else {}
        except (OSError, ValueError):
            return {}

    def _store(self, values: Dict[str, str]) -> None:
        d = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".kws-pos-")
        with os.fdopen(fd, "w") as f:
            json.dump(values, f)
        os.replace(tmp, self.path)

    def get(self, key: str) -> Optional[str]:
        return self._load().get(key)

    def set(self, key: str, value: str) -> None:
        v = self._load()
        v[key] = value
        self._store(v)

    def remove(self, key: str) -> None:
        v = self._load()
        if v.pop(key, None) is not None:
            self._store(v)


TokenSource = Union[None, str, Callable[[], Union[Optional[str], Awaitable[Optional[str]]]]]
CARRIERS = ("header", "subprotocol", "query", "cookie")


def _with_query(url: str, name: str, value: Optional[str]) -> str:
    u = urlsplit(url)
    q = [(k, v) for k, v in parse_qsl(u.query, keep_blank_values=True) if k != name]
    if value is not None:
        q.append((name, value))
    return urlunsplit((u.scheme, u.netloc, u.path, urlencode(q, safe=":"), u.fragment))


def _status_of(exc: BaseException) -> Optional[int]:
    """The HTTP status of a refused handshake (websockets 10 or 14+), or None."""
    code = getattr(exc, "status_code", None)
    if code is None and getattr(exc, "response", None) is not None:
        code = getattr(exc.response, "status_code", None)
    return int(code) if code is not None else None


async def _open(url, subprotocols, headers, timeout):
    if _WS_MAJOR >= 14:
        from websockets.asyncio.client import connect
        return await connect(url, subprotocols=subprotocols, additional_headers=headers,
                             max_size=None, open_timeout=timeout)
    return await websockets.connect(url, subprotocols=subprotocols, extra_headers=headers,
                                    max_size=None, open_timeout=timeout)


_END = object()


class KwsClient:
    """A kws.v1 client.

        async with KwsClient("ws://127.0.0.1:8080/ws", token=get_token) as c:
            async for record in c:
                print(record.partition, record.offset, record.text)

    url: one URL or several, tried in turn (the next one after 1012 or a
      failed connect). token: a string, or a function (plain or async) called
      before every connect that returns a fresh token. token_carrier:
      "header" (Authorization: Bearer; the default), "subprotocol"
      (kws.token.<token>), "query" (?access_token=), "cookie" (cookie_name).
    headers: extra handshake headers (e.g. {"X-Client-Id": "user-42"} with
      --auth none). position: "p:o" or (p, o) to start from; else the stored
      one. storage: MemoryStorage, FileStorage or any object with get, set
      and remove; storage_key: its key (one per client id).
    Events (on(name, fn), fn(dict)): status, resume, gap, duplicate,
      connecting, open, close, reconnecting, stopped, error."""

    def __init__(self, url: Union[str, Sequence[str]], *, token: TokenSource = None,
                 token_carrier: str = "header", cookie_name: str = "kws_token",
                 headers: Optional[Dict[str, str]] = None,
                 position: Union[None, str, Sequence[int]] = None,
                 storage: Any = None, storage_key: str = "kws.position",
                 backoff: Optional[Backoff] = None, connect_timeout_s: float = 15.0,
                 max_queued: int = 1000, position_in_query: bool = False):
        self.urls: List[str] = [url] if isinstance(url, str) else list(url)
        if not self.urls or not all(isinstance(u, str) and u for u in self.urls):
            raise TypeError("url must be a URL or a non-empty list of URLs")
        if token_carrier not in CARRIERS:
            raise ValueError(f"token_carrier must be one of {', '.join(CARRIERS)}")
        if token is not None and not isinstance(token, str) and not callable(token):
            raise TypeError("token must be a string or a function returning one")
        self.token = token
        self.token_carrier = token_carrier
        self.cookie_name = cookie_name
        self.headers = dict(headers or {})
        self.storage = storage
        self.storage_key = storage_key
        self.backoff = backoff or Backoff()
        self.connect_timeout_s = connect_timeout_s
        self.position_in_query = position_in_query
        self.state = "idle"
        self.session_state: Optional[str] = None
        self.stop_reason: Optional[Stopped] = None
        self.position: Optional[Position] = None    # after the last record handed out
        if position is not None:
            self.position = parse_position(position)
            if self.position is None:
                raise ValueError(f"position must be 'partition:offset', not {position!r}")
        elif storage is not None:
            self.position = parse_position(storage.get(storage_key))
        self._recv_pos = self.position               # after the last record received
        self._listeners: Dict[str, list] = {}
        self._queue: asyncio.Queue = asyncio.Queue(max_queued)
        self._ws = None
        self._open = asyncio.Event()
        self._task: Optional[asyncio.Task] = None
        self._closing = False
        self._url_index = 0
        self._failures = 0

    # events
    def on(self, event: str, fn: Callable[[dict], Any]) -> Callable[[], None]:
        """Adds a listener; returns a function that removes it."""
        self._listeners.setdefault(event, []).append(fn)
        return lambda: self._listeners.get(event, []).remove(fn)

    def _emit(self, event: str, **ev):
        for fn in list(self._listeners.get(event, [])):
            try:
                fn(ev)
            except Exception as e:  # a listener's bug must not stop delivery
                if event != "error":
                    self._emit("error", error=e, where=f"{event} listener")

    def _gap(self, reason, frm, to):
        self._emit("gap", **{"reason": reason, "from": frm, "to": to})

    def _set_state(self, state):
        self.state = state

    # lifecycle
    def start(self) -> None:
        """Starts connecting (in the running loop)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Closes for good; iteration ends after the records already received."""
        self._closing = True
        ws = self._ws
        if self._task is not None:
            self._task.cancel()
            # websockets 10's connect() can hold a cancellation until its
            # open timeout; _session closes such a late socket itself.
            await asyncio.wait({self._task}, timeout=2)
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 5)
            except Exception:
                pass
        self._set_state("closed")
        self._end(None)
        self._open.set()  # wake senders: they raise

    async def __aenter__(self):
        self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def reset_position(self) -> None:
        """Forgets the position (and its stored copy): the next connect starts live."""
        self.position = self._recv_pos = None
        self._store()

    def _store(self):
        if self.storage is None:
            return
        try:
            if self.position is None:
                self.storage.remove(self.storage_key)
            else:
                self.storage.set(self.storage_key, str(self.position))
        except Exception as e:
            self._emit("error", error=e, where="storage")

    def _end(self, exc):
        while True:
            try:
                self._queue.put_nowait((_END, exc))
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()  # nobody reads them any more

    # records
    def __aiter__(self):
        return self

    async def __anext__(self) -> Record:
        while True:
            item = await self._queue.get()
            if item[0] is _END:
                self._queue.put_nowait(item)  # later iterations end too
                if item[1] is not None:
                    raise item[1]
                raise StopAsyncIteration
            kind = item[0]
            if kind == "d":
                rec = item[1]
                if self.position is not None and rec.partition != self.position.partition:
                    self._gap("partition-changed", self.position,
                              Position(rec.partition, rec.offset))
                self.position = rec.next
                self._store()
                return rec
            self._take_status(*item[1:])

    def _take_status(self, st: Status, first: bool, presented: Optional[Position]):
        self.session_state = st.state
        if first:
            if presented is not None:
                complete = st.state == "complete"
                self._emit("resume", state=st.state, partition=st.partition, offset=st.offset,
                           presented=presented, complete=complete)
                if not complete:
                    self._gap("position-not-resumed" if st.state == "live" else "incomplete-resume",
                              presented, Position(st.partition, st.offset))
            if (self.position is None or st.partition != self.position.partition
                    or (presented is None and st.state == "live")):
                self.position = Position(st.partition, st.offset)
                self._store()
        elif st.state == "incomplete":
            self._gap("incomplete-replay", Position(st.partition, st.offset), None)
        self._emit("status", state=st.state, partition=st.partition, offset=st.offset,
                   first=first, presented=presented if first else None)

    # upstream
    async def send(self, data: Union[str, bytes]) -> None:
        """Sends a message upstream (str: text frame, bytes: binary). Waits
        while disconnected, and for the socket's write buffer (websockets'
        own back-pressure). At most once: a message taken by a socket that
        then breaks may be lost; raises ConnectionError if it broke during
        the send, Stopped if the client stopped."""
        while True:
            if self.stop_reason is not None:
                raise self.stop_reason
            if self._closing:
                raise ConnectionError("kws: client closed")
            await self._open.wait()
            ws = self._ws
            if ws is None:
                continue
            try:
                await ws.send(data)
                return
            except websockets.ConnectionClosed as e:
                raise ConnectionError(f"kws: connection closed during send: {e}") from e

    # the connection loop
    async def _token(self) -> Optional[str]:
        t = self.token
        if t is None or isinstance(t, str):
            return t
        v = t()
        if inspect.isawaitable(v):
            v = await v
        if v is not None and not isinstance(v, str):
            raise TypeError("the token function must return a string")
        return v or None

    def _handshake(self, token):
        url = self.urls[self._url_index % len(self.urls)]
        protocols = [SUBPROTOCOL]
        headers = dict(self.headers)
        # The position goes before a query token: routers before issue 12's
        # fix missed an argument that followed one longer than their buffer.
        pos = self._recv_pos
        if pos is not None:
            if self.position_in_query:
                url = _with_query(url, "position", str(pos))
            else:
                headers["X-Kws-Position"] = str(pos)
        if token:
            if self.token_carrier == "header":
                headers["Authorization"] = "Bearer " + token
            elif self.token_carrier == "subprotocol":
                protocols.append(TOKEN_SUBPROTOCOL_PREFIX + token)
            elif self.token_carrier == "query":
                url = _with_query(url, "access_token", token)
            else:
                headers["Cookie"] = f"{self.cookie_name}={token}"
        return url, protocols, headers, pos

    async def _run(self):
        try:
            while not self._closing:
                code, reason, status = await self._session()
                if self._closing:
                    break
                self._emit("close", code=code, reason=reason, status=status)
                if status in FATAL_STATUSES:
                    self._stop(Stopped(status, reason, FATAL_STATUSES[status]))
                    return
                d = close_policy(code, self._failures, self.backoff)
                if d.action == "stop":
                    self._stop(Stopped(code, reason, d.why))
                    return
                if code == 1012 or self._failures:
                    self._url_index += 1
                self._set_state("waiting")
                self._emit("reconnecting", code=code, reason=reason, delay_s=d.delay_s,
                           why=d.why, attempt=self._failures, position=self._recv_pos)
                await asyncio.sleep(d.delay_s)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug here must not hang the iterator
            self._emit("error", error=e, where="loop")
            self._end(e)

    def _stop(self, exc: Stopped):
        self.stop_reason = exc
        self._set_state("stopped")
        self._emit("stopped", code=exc.code, reason=exc.reason, why=exc.why)
        self._end(exc)
        self._open.set()  # wake senders: they raise

    async def _session(self):
        """One connection, from handshake to close: (code, reason, http status)."""
        self._set_state("connecting")
        try:
            token = await self._token()
        except Exception as e:
            self._failures += 1
            self._emit("error", error=e, where="token")
            return 1006, "token callback failed", None
        url, protocols, headers, presented = self._handshake(token)
        self._emit("connecting", url=url.split("access_token=")[0], position=presented,
                   attempt=self._failures)
        try:
            ws = await _open(url, protocols, headers, self.connect_timeout_s)
        except Exception as e:
            self._failures += 1
            status = _status_of(e)
            if status is None and not isinstance(e, (OSError, asyncio.TimeoutError,
                                                     websockets.WebSocketException)):
                raise
            return 1006, f"handshake failed: {e}", status
        if self._closing:
            await ws.close()
            return 1000, "closed", None
        self._ws = ws
        first = True
        try:
            if ws.subprotocol != SUBPROTOCOL:
                self._emit("error", error=ProtocolError(f"router selected {ws.subprotocol!r}"),
                           where="open")
            self._set_state("open")
            self._open.set()
            self._emit("open", url=url.split("access_token=")[0], protocol=ws.subprotocol)
            while True:
                if first:
                    m = await asyncio.wait_for(ws.recv(), self.connect_timeout_s)
                else:
                    m = await ws.recv()
                try:
                    msg = parse_message(m)
                except ProtocolError as e:
                    self._emit("error", error=e, where="message")
                    continue
                if isinstance(msg, Status):
                    if first:
                        self._failures = 0
                        if (self._recv_pos is None or msg.partition != self._recv_pos.partition
                                or (presented is None and msg.state == "live")):
                            self._recv_pos = Position(msg.partition, msg.offset)
                    await self._queue.put(("s", msg, first, presented))
                    first = False
                    continue
                p = self._recv_pos
                if p is not None and msg.partition == p.partition and msg.offset < p.offset:
                    self._emit("duplicate", partition=msg.partition, offset=msg.offset, position=p)
                    continue
                self._recv_pos = Position(msg.partition, msg.offset + 1)
                await self._queue.put(("d", Record(msg.partition, msg.offset, msg.body)))
        except asyncio.TimeoutError:
            self._failures += 1
            await ws.close()
            return 1006, "no status line within the connect timeout", None
        except websockets.ConnectionClosed:
            if first:
                self._failures += 1
            return (ws.close_code or 1006), (ws.close_reason or ""), None
        finally:
            self._open.clear()
            self._ws = None
