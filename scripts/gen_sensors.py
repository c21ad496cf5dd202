#!/usr/bin/env python3
"""Deterministic sensor NDJSON in the exact shape of the AWS IoT sample (MISSION.md scenario 1).

    gen_sensors.py OUT --rows N [--devices D] [--seed S] [--malformed K]

One reading per device per second, devices interleaved, temperatures on a slow random walk
around 25 C with rare spikes. With --malformed K, K broken lines of assorted kinds are put at
fixed positions (their line numbers are printed to stderr). Used for the checked-in sample
data and by the benchmark.
"""
import argparse
import datetime
import json
import random
import sys

BROKEN = [
    '{"client_id": "raspberrypi-x", "timestamp": "2020-04-16 11:33:23", "humidity": 39.3',  # truncated
    'not json at all',
    '{"client_id": "raspberrypi-x", "timestamp": "2020-04-16 11:33:23", "humidity": 39.35, "temperature": "hot", "pressure": 1020.44, "pitch": 4.04, "roll": 7.53, "yaw": 77.01, "count": 1}',
    '{"timestamp": "2020-04-16 11:33:23", "humidity": 39.35, "temperature": 21.0, "pressure": 1020.44, "pitch": 4.04, "roll": 7.53, "yaw": 77.01, "count": 1}',  # no client_id
    '[1, 2, 3]',
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--devices", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--malformed", type=int, default=0)
    ap.add_argument("--start", default="2020-04-16 10:40:00")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    start = datetime.datetime.strptime(a.start, "%Y-%m-%d %H:%M:%S")
    temps = [25.0 + rng.uniform(-3, 3) for _ in range(a.devices)]
    counts = [0] * a.devices
    bad_at = set()
    if a.malformed:
        step = max(1, a.rows // (a.malformed + 1))
        bad_at = {step * (i + 1) for i in range(a.malformed)}
    with open(a.out, "w") as f:
        line_no = 0
        for i in range(a.rows):
            line_no += 1
            if i in bad_at:
                f.write(BROKEN[len(bad_at & set(range(i))) % len(BROKEN)] + "\n")
                print(f"malformed line {line_no}", file=sys.stderr)
                continue
            d = i % a.devices
            t = start + datetime.timedelta(seconds=i // a.devices)
            temps[d] += rng.uniform(-0.15, 0.15)
            temps[d] = min(max(temps[d], 15.0), 35.0)
            temp = temps[d] + (rng.uniform(12, 20) if rng.random() < 0.002 else 0.0)
            counts[d] += 1
            rec = {
                "client_id": f"raspberrypi-{d}",
                "timestamp": t.strftime("%Y-%m-%d %H:%M:%S"),
                "humidity": round(rng.uniform(30, 50), 2),
                "temperature": round(temp, 2),
                "pressure": round(rng.uniform(1000, 1030), 2),
                "pitch": round(rng.uniform(-10, 10), 2),
                "roll": round(rng.uniform(-10, 10), 2),
                "yaw": round(rng.uniform(0, 360), 2),
                "count": counts[d],
            }
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
