"""A stand-in for the router in the unit tests: a websockets server that
selects kws.v1, records every handshake (path, headers, subprotocols) and
lets each test script what a connection gets."""

import asyncio
import http
from urllib.parse import parse_qs, urlsplit

import websockets


class Conn:
    def __init__(self, ws, hs):
        self.ws = ws
        self.hs = hs
        self.received = []
        self.done = asyncio.Event()

    async def status(self, state, p, o):
        await self.ws.send(f"s {state} {p} {o}\n".encode())

    async def record(self, p, o, body):
        await self.ws.send(f"d {p} {o}\n".encode() + (body.encode() if isinstance(body, str) else body))

    async def close(self, code, reason=""):
        await self.ws.close(code, reason)

    def kill(self):
        self.ws.transport.abort()  # like a router killed: no close frame (1006)


class FakeRouter:
    def __init__(self, refuse=None):
        self.refuse = refuse        # fn(handshake) -> None or (status, body)
        self.handshakes = []
        self.conns = asyncio.Queue()

    async def __aenter__(self):
        async def process_request(path, headers):
            u = urlsplit(path)
            hs = {"path": u.path, "query": {k: v[0] for k, v in parse_qs(u.query).items()},
                  "headers": headers,
                  "protocols": [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]}
            self.handshakes.append(hs)
            r = self.refuse(hs) if self.refuse else None
            if r:
                return http.HTTPStatus(r[0]), [("Content-Type", "text/plain")], r[1].encode()
            return None

        async def handler(ws, path=None):
            c = Conn(ws, self.handshakes[-1])
            await self.conns.put(c)
            try:
                async for m in ws:
                    c.received.append(m)
            except websockets.ConnectionClosed:
                pass
            c.done.set()

        self.server = await websockets.serve(handler, "127.0.0.1", 0, subprotocols=["kws.v1"],
                                             process_request=process_request)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws"
        return self

    async def next(self, timeout=5):
        return await asyncio.wait_for(self.conns.get(), timeout)

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()
