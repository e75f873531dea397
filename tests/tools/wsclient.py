#!/usr/bin/env python3
"""A minimal WebSocket client for trying the router by hand: prints every
message it receives, one per line, and sends each line typed on stdin.
End of input (Ctrl-D) closes the connection and exits; so does Ctrl-C.

    python3 tests/tools/wsclient.py --id client-1 ws://127.0.0.1:8080/ws      # --auth none
    python3 tests/tools/wsclient.py --token JWT ws://127.0.0.1:8080/ws        # --auth jwt
    python3 tests/tools/wsclient.py --token-url 'http://127.0.0.1:8088/token?id=client-1' \
        ws://127.0.0.1:8080/ws     # a token from deploy/local/run's development endpoint
"""

import argparse
import asyncio
import sys
import threading


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
    try:
        ws = await websockets.connect(a.url, extra_headers=headers, max_size=None)
    except (websockets.InvalidHandshake, OSError) as e:
        sys.exit(f"wsclient: the router refused or did not answer the handshake: {e}"
                 " (its log says why; with --auth jwt give --token or --token-url)")
    try:
        who = a.id or "the token's subject"
        print(f"connected to {a.url} as {who}; type a line to send it upstream", file=sys.stderr)
        loop = asyncio.get_running_loop()
        lines = asyncio.Queue()

        def read_stdin():
            # A daemon thread: a blocked read does not hold the process at
            # exit (Ctrl-C), and end of input (Ctrl-D) is passed on as None.
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
            loop.call_soon_threadsafe(lines.put_nowait, None)

        async def pump_stdin():
            while (line := await lines.get()) is not None:
                await ws.send(line)
            await ws.close()  # end of input: close, which ends the loop below

        threading.Thread(target=read_stdin, daemon=True).start()
        pump = asyncio.ensure_future(pump_stdin())
        try:
            async for m in ws:
                print(m.decode("utf-8", "replace") if isinstance(m, bytes) else m, flush=True)
        except websockets.ConnectionClosed:
            pass
        pump.cancel()
        print(f"closed: {ws.close_code} {ws.close_reason}", file=sys.stderr)
    finally:
        await ws.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
