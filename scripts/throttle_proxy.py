#!/usr/bin/env python3
"""A loopback HTTP/1.1 proxy in front of the Kinesis emulator that throttles GetRecords.

    throttle_proxy.py --listen-port 0 --upstream http://127.0.0.1:P --throttle-getrecords N \
        [--throttle-window-seconds T] [--throttle-every K] [--expire-iterators-after S] [--stats FILE]

A GetRecords call (header `X-Amz-Target: Kinesis_20131202.GetRecords`) is answered, without
reaching the emulator, with what Kinesis answers a reader over its budget (spec KDS-07):
HTTP 400, `application/x-amz-json-1.1`, body
`{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard …"}`
when it is one of the first N GetRecords calls, or arrives within T seconds of the first
GetRecords call, or is every K-th GetRecords call. With --expire-iterators-after S, a
GetRecords whose iterator the proxy saw issued more than S seconds ago is answered HTTP 400
`ExpiredIteratorException` (AWS's limit is 300 s, spec KDS-03; the emulator's is a fixed 300 s),
so a test need not wait five minutes. Everything else is forwarded unchanged (method, path,
headers, body; status, headers, body back).

Prints `listening on PORT` on stdout first. After every request, writes to --stats (atomically)
`{"throttled": n, "expired": n, "forwarded": {target: n, …}, "requests": n}`.

Standard library only. The AWS SDKs speak awsJson1.1 over HTTP/1.1 to an http:// endpoint;
SubscribeToShard (HTTP/2 event streams) is not proxied.
"""

import argparse
import http.client
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

GET_RECORDS = "Kinesis_20131202.GetRecords"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class State:
    """Counters and the iterator → (stream, shard) map, behind one lock."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.getrecords = 0
        self.first_getrecords = None
        self.throttled = 0
        self.expired = 0
        self.issued = {}  # shard iterator -> when the proxy saw it issued (time.time())
        self.forwarded = {}
        self.requests = 0
        self.iterators = {}  # shard iterator -> (stream, shard id), learned from answers

    def should_throttle(self):
        with self.lock:
            self.getrecords += 1
            now = time.monotonic()
            if self.first_getrecords is None:
                self.first_getrecords = now
            a = self.args
            throttle = (
                self.getrecords <= a.throttle_getrecords
                or (a.throttle_window_seconds > 0 and now - self.first_getrecords < a.throttle_window_seconds)
                or (a.throttle_every > 0 and self.getrecords % a.throttle_every == 0)
            )
            if throttle:
                self.throttled += 1
            return throttle

    def count(self, target):
        with self.lock:
            self.requests += 1
            if target is not None:
                self.forwarded[target] = self.forwarded.get(target, 0) + 1

    def learn(self, iterator, where):
        if iterator:
            with self.lock:
                self.issued[iterator] = time.time()
                if where:
                    self.iterators[iterator] = where

    def expired_since(self, iterator):
        """When the iterator was issued, if it is older than --expire-iterators-after."""
        limit = self.args.expire_iterators_after
        if limit <= 0 or not iterator:
            return None
        with self.lock:
            issued = self.issued.get(iterator)
            if issued is None or time.time() - issued <= limit:
                return None
            self.expired += 1
            return issued

    def where(self, iterator):
        with self.lock:
            return self.iterators.get(iterator)

    def write_stats(self):
        if not self.args.stats:
            return
        with self.lock:
            doc = {"throttled": self.throttled, "expired": self.expired, "forwarded": dict(self.forwarded), "requests": self.requests}
            tmp = f"{self.args.stats}.{threading.get_ident()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            os.replace(tmp, self.args.stats)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State = None  # set by main
    upstream: urllib.parse.SplitResult = None

    def log_message(self, fmt, *args):  # quiet: the test reads stdout for the port only
        if self.state.args.verbose:
            sys.stderr.write("proxy: " + (fmt % args) + "\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        body = self.read_body()
        target = self.headers.get("X-Amz-Target")
        state = self.state
        request = json_or_none(body) if target else None
        fault = self.fault(request) if target == GET_RECORDS else None
        if fault:
            self.send_error_json(*fault)
            state.count(None)
            state.write_stats()
            return
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}]
        status, reason, resp_headers, resp_body = self.forward(body, headers)
        self.learn(target, request, json_or_none(resp_body) if target else None)
        self.log_request(status)
        self.send_response_only(status, reason)  # the emulator's own Date and Server go back
        for k, v in resp_headers:
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp_body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp_body)
        state.count(target or f"{self.command} {self.path}")
        state.write_stats()

    def forward(self, body, headers):
        """One upstream connection per request: never a retry on a stale kept-alive connection,
        which could put a record twice."""
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def learn(self, target, request, response):
        """Remember which stream and shard each iterator belongs to, for the throttle message."""
        if not request or not response:
            return
        if target == "Kinesis_20131202.GetShardIterator":
            self.state.learn(response.get("ShardIterator"), (request.get("StreamName") or request.get("StreamARN"), request.get("ShardId")))
        elif target == GET_RECORDS:
            self.state.learn(response.get("NextShardIterator"), self.state.where(request.get("ShardIterator")))

    def fault(self, request):
        """(error type, message) to answer this GetRecords with instead of forwarding it."""
        iterator = (request or {}).get("ShardIterator")
        issued = self.state.expired_since(iterator)
        if issued is not None:
            fmt = "%a %b %d %H:%M:%S UTC %Y"
            message = (
                f"Iterator expired. The iterator was created at time {time.strftime(fmt, time.gmtime(issued))} "
                f"while right now it is {time.strftime(fmt, time.gmtime())} which is further in the future than "
                f"the tolerated delay of {int(self.state.args.expire_iterators_after * 1000)} milliseconds."
            )
            return "ExpiredIteratorException", message
        if self.state.should_throttle():
            stream, shard = self.state.where(iterator) or ("unknown", "shardId-unknown")
            stream = (stream or "unknown").rsplit("/", 1)[-1]
            return "ProvisionedThroughputExceededException", (
                f"Rate exceeded for shard {shard} in stream {stream} under account 000000000000."
            )
        return None

    def send_error_json(self, error_type, message):
        """An error as Kinesis sends it: HTTP 400, awsJson1.1 body with `__type`."""
        body = json.dumps({"__type": error_type, "message": message}).encode()
        self.send_response(400, "Bad Request")
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = handle_any


def json_or_none(data):
    try:
        doc = json.loads(data)
        return doc if isinstance(doc, dict) else None
    except ValueError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen-port", type=int, default=0)
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the emulator")
    p.add_argument("--throttle-getrecords", type=int, default=0, help="throttle the first N GetRecords calls")
    p.add_argument("--throttle-window-seconds", type=float, default=0.0, help="throttle every GetRecords for T s after the first")
    p.add_argument("--throttle-every", type=int, default=0, help="throttle every K-th GetRecords call")
    p.add_argument(
        "--expire-iterators-after", type=float, default=0.0, help="answer ExpiredIteratorException for iterators older than S s"
    )
    p.add_argument("--stats", help="JSON counters, rewritten after every request")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()

    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.port:
        sys.exit(f"--upstream must be http://HOST:PORT, not {args.upstream}")
    Handler.state = State(args)
    Handler.upstream = upstream
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.listen_port), Handler)
    server.daemon_threads = True
    Handler.state.write_stats()
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
