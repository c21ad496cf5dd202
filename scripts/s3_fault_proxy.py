#!/usr/bin/env python3
"""A loopback HTTP/1.1 proxy in front of an S3 API (moto) that injects the faults S3 clients meet.

    s3_fault_proxy.py --listen-port 0 --upstream http://127.0.0.1:P --rate 0.15 --seed 7 \
        [--kinds slowdown,internal,reset,cut,lost,slow] [--fail-after N] [--stats FILE]

Each request, with probability --rate (seeded, so a failing run can be replayed), gets one fault
of --kinds instead of a plain forward:
  slowdown  answered 503 with S3's `SlowDown` error document, not forwarded;
  internal  answered 500 `InternalError`, not forwarded;
  reset     the connection is closed before the request is read (nothing forwarded);
  cut       half the request body is read, then the connection is closed (a part cut mid-upload);
  lost      forwarded and done by the server, but the connection is closed instead of answering
            (the client cannot know it happened: retries must be idempotent);
  slow      forwarded after a 1.5 s pause.
With --fail-after N, every request after the N-th is answered 503 `SlowDown` (an outage that
outlasts any retry). Everything else is forwarded unchanged (method, path, query, headers, body; status, headers, body).

Prints `listening on PORT` on stdout first. After every request, writes to --stats (atomically)
`{"requests": n, "faults": {kind: n}, "by_operation": {"PUT ?partNumber": n, …}}`.

Standard library only.
"""

import argparse
import http.client
import http.server
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
ERROR_DOC = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
)


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.kinds = [k for k in args.kinds.split(",") if k]
        self.requests = 0
        self.faults = {}
        self.by_operation = {}

    def choose(self, operation):
        with self.lock:
            self.requests += 1
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1
            if self.args.fail_after is not None and self.requests > self.args.fail_after:
                self.faults["outage"] = self.faults.get("outage", 0) + 1
                return "slowdown"
            if self.kinds and self.rng.random() < self.args.rate:
                kind = self.rng.choice(self.kinds)
                self.faults[kind] = self.faults.get(kind, 0) + 1
                return kind
            return None

    def write_stats(self):
        if not self.args.stats:
            return
        with self.lock:
            doc = {"requests": self.requests, "faults": dict(self.faults), "by_operation": dict(self.by_operation)}
        tmp = self.args.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.args.stats)


def operation(method, path):
    query = urllib.parse.urlsplit(path).query
    keys = sorted(k for k, _ in urllib.parse.parse_qsl(query, keep_blank_values=True))
    return method + (" ?" + "&".join(keys) if keys else "")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None
    upstream = None

    def log_message(self, fmt, *args):
        sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def drop(self):
        """Close the connection at once, answering nothing."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

    def error(self, status, code, message):
        doc = ERROR_DOC.format(code=code, message=message).encode()
        # The body was not read: the client may have sent it already; close after answering.
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(doc)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(doc)
        self.close_connection = True

    def handle_any(self):
        fault = self.state.choose(operation(self.command, self.path))
        try:
            if fault == "reset":
                return self.drop()
            if fault == "cut":
                length = int(self.headers.get("Content-Length", "0") or 0)
                self.rfile.read(length // 2)
                return self.drop()
            if fault == "slowdown":
                self.body()
                return self.error(503, "SlowDown", "Please reduce your request rate.")
            if fault == "internal":
                self.body()
                return self.error(500, "InternalError", "We encountered an internal error. Please try again.")
            body = self.body()
            if fault == "slow":
                time.sleep(1.5)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            conn.close()
            if fault == "lost":
                return self.drop()
            self.send_response(answer.status, answer.reason)
            for k, v in answer.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            self.state.write_stats()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen-port", type=int, default=0)
    p.add_argument("--upstream", required=True)
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kinds", default="slowdown,internal,reset,cut,lost,slow")
    p.add_argument("--fail-after", type=int)
    p.add_argument("--stats")
    args = p.parse_args()
    Handler.state = State(args)
    Handler.upstream = urllib.parse.urlsplit(args.upstream)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.listen_port), Handler)
    server.daemon_threads = True
    print("listening on %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
