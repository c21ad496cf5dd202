#!/usr/bin/env python3
"""Simulated IoT devices publishing sensor JSON over MQTT (a real client: paho-mqtt).

    mqtt_publish.py --port P [--host H] [--ca CA --cert C --key K] --devices D --messages N
                    [--interval S] [--qos 1] [--prefix streaming-data] [--seed 1]
                    [--first-count 0] [--log FILE] [--extra KIND=COUNT ...] [--retain]

Each device `device-<i>` publishes N messages to `<prefix>/device-<i>`, shaped like the AWS
IoT sample (client_id, timestamp, temperature, humidity, count), `count` running from
--first-count. Messages are interleaved across devices; with --interval the whole fleet
publishes one round per interval. Every message the broker acknowledged (PUBACK) is written
to --log as one JSON line (the ground truth for tests), and the summary is printed last.
--retain publishes the readings as retained messages (the broker keeps the last one per
topic and replays it to every new subscriber). --extra publishes malformed messages too: `notjson=K` (not JSON), `oversize=K` (over 64 KiB),
`badtype=K` (temperature is a string).
"""
import argparse
import json
import random
import sys
import time

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--messages", type=int, default=10)
    ap.add_argument("--interval", type=float, default=0.0)
    ap.add_argument("--qos", type=int, default=1)
    ap.add_argument("--prefix", default="streaming-data")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first-count", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--client-id", default="publisher")
    ap.add_argument("--extra", action="append", default=[])
    ap.add_argument("--retain", action="store_true")
    a = ap.parse_args()

    rng = random.Random(a.seed)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{a.client_id}-{a.seed}", clean_session=True)
    if a.ca:
        client.tls_set(ca_certs=a.ca, certfile=a.cert, keyfile=a.key)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=0.1, max_delay=1)
    client.connect(a.host, a.port, keepalive=6)
    client.loop_start()

    log = open(a.log, "a") if a.log else None
    pending = []
    temps = {d: 20.0 + rng.random() * 5 for d in range(a.devices)}
    sent = 0
    for n in range(a.messages):
        round_start = time.monotonic()
        for d in range(a.devices):
            temps[d] = round(temps[d] + rng.gauss(0, 0.3), 2)
            record = {
                "client_id": f"device-{d}",
                "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                "temperature": temps[d],
                "humidity": round(40 + rng.random() * 20, 1),
                "count": a.first_count + n,
            }
            info = client.publish(f"{a.prefix}/device-{d}", json.dumps(record), qos=a.qos, retain=a.retain)
            pending.append((info, record))
            sent += 1
        if len(pending) > 2000 or a.interval:
            flush(pending, log)
        if a.interval:
            time.sleep(max(0.0, a.interval - (time.monotonic() - round_start)))
    for spec in a.extra:
        kind, count = spec.split("=")
        for i in range(int(count)):
            payload = {
                "notjson": lambda: b"this is not json {",
                "oversize": lambda: json.dumps({"client_id": "big", "pad": "x" * 70000}).encode(),
                "badtype": lambda: json.dumps({"client_id": "bad", "temperature": "hot", "count": i}).encode(),
            }[kind]()
            info = client.publish(f"{a.prefix}/{kind}-{i}", payload, qos=a.qos)
            pending.append((info, None))
    flush(pending, log)
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"published": sent}))


def flush(pending, log):
    for info, record in pending:
        while not info.is_published():
            info.wait_for_publish(timeout=1)
        if log and record is not None:
            log.write(json.dumps(record) + "\n")
    if log:
        log.flush()
    pending.clear()


if __name__ == "__main__":
    sys.exit(main())
