#!/usr/bin/env python3
"""A minimal WebSocket client for trying the router by hand: prints every
message it receives, one per line, and sends each line typed on stdin.

    python3 tests/tools/wsclient.py --id client-1 ws://127.0.0.1:8080/ws
"""

import argparse
import asyncio
import sys


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--id", required=True, help="client id to present")
    ap.add_argument("--header", default="X-Client-Id", help="id header name")
    a = ap.parse_args()
    try:
        import websockets
    except ImportError:
        sys.exit("needs Debian's python3-websockets: run /usr/bin/python3, "
                 "or apt-get install python3-websockets")
    async with websockets.connect(a.url, extra_headers={a.header: a.id}, max_size=None) as ws:
        print(f"connected to {a.url} as {a.id}; type a line to send it upstream", file=sys.stderr)
        loop = asyncio.get_running_loop()

        async def pump_stdin():
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
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
