# Python 2.7 (runs in the Autobahn virtualenv): `wstest -m fuzzingclient`
# that also sends each spec server's "headers" in the opening handshake.
#
# wstest 0.8.2's fuzzing client reads only "url", "origin", "protocols" and
# "options" of a server entry (FuzzingClientFactory.nextServer); autobahn
# 0.10.9's WebSocketClientFactory does send `factory.headers`, it is just
# never set. The router takes the client id from a header (X-Client-Id), so
# this sets it, per case: "{case}" in a header value becomes the case id
# ("autobahn-bin-{case}" -> "autobahn-bin-2.10"), so every case is its own
# client and an echo that is late for one case never reaches the next.
#
# Usage: python wstest_headers.py -m fuzzingclient -s spec.json
import sys

from autobahntestsuite import fuzzing, wstest


def _set_headers(factory):
    server = factory.spec["servers"][factory.currServer]
    case = getattr(factory, "currentCaseId", "") or ""
    factory.headers = dict((k, v.replace("{case}", case))
                           for k, v in server.get("headers", {}).items())


_next_server = fuzzing.FuzzingClientFactory.nextServer
_next_case = fuzzing.FuzzingClientFactory.nextCase


def next_server(self):
    more = _next_server(self)
    if more:
        _set_headers(self)
    return more


def next_case(self):
    more = _next_case(self)
    if more:
        _set_headers(self)
    return more


fuzzing.FuzzingClientFactory.nextServer = next_server
fuzzing.FuzzingClientFactory.nextCase = next_case

if __name__ == "__main__":
    sys.argv[0] = "wstest"
    sys.exit(wstest.run())
