#!/usr/bin/env python3
"""A minimal WebSocket client for trying the router by hand: prints every
message it receives, one per line, and sends each line typed on stdin.

    python3 tests/tools/wsclient.py --id client-1 ws://127.0.0.1:8080/ws      # --auth none
    python3 tests/tools/wsclient.py --token JWT ws://127.0.0.1:8080/ws        # --auth jwt
    python3 tests/tools/wsclient.py --token-url 'http://127.0.0.1:8088/token?id=client-1' \
        ws://127.0.0.1:8080/ws     # a token from deploy/local/run's development endpoint
"""

import argparse
import asyncio
import sys


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--id", help="client id to present in the id header (--auth none)")
    ap.add_argument("--header", default="X-Client-Id", help="id header name")
    ap.add_argument("--token", help="a JWT, sent as Authorization: Bearer (--auth jwt)")
    ap.add_argument("--token-url", help="fetch the token from this URL (JSON {\"token\": ...})")
    a = ap.parse_args()
    headers = {}
    if a.token_url:
        import json
        import urllib.request
        with urllib.request.urlopen(a.token_url, timeout=10) as r:
            a.token = json.loads(r.read())["token"]
    if a.token:
        headers["Authorization"] = "Bearer " + a.token
    if a.id:
        headers[a.header] = a.id
    if not headers:
        ap.error("give --id (router --auth none) or --token/--token-url (--auth jwt)")
    try:
        import websockets
    except ImportError:
        sys.exit("needs Debian's python3-websockets: run /usr/bin/python3, "
                 "or apt-get install python3-websockets")
    async with websockets.connect(a.url, extra_headers=headers, max_size=None) as ws:
        who = a.id or "the token's subject"
        print(f"connected to {a.url} as {who}; type a line to send it upstream", file=sys.stderr)
        loop = asyncio.get_running_loop()

        async def pump_stdin():
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:  # Ctrl-D: end of input, so close and stop
                    await ws.close()
                    return
                await ws.send(line.rstrip("\n"))

        asyncio.ensure_future(pump_stdin())
        try:
            async for m in ws:
                print(m.decode("utf-8", "replace") if isinstance(m, bytes) else m, flush=True)
        except websockets.ConnectionClosed:
            pass
        print(f"closed: {ws.close_code} {ws.close_reason}", file=sys.stderr)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
