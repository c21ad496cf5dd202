#!/usr/bin/env python3
"""Driver for scripts/mqtt-bench.sh: MQTT → map → filter → Parquet on a local mosquitto.

1. Throughput: N sensor messages are published at QoS 1 into Sluice's persistent session while
   Sluice is stopped, then Sluice is started and timed until its checkpoints say all N were
   read and committed (acknowledged). The baseline, in the same script, is the same N messages
   as an NDJSON file through the same pipeline with the file source: the ratio is what MQTT
   costs (broker round trips, acknowledgement after each commit).
2. Latency: devices publish at a steady RATE for SECONDS while Sluice runs; every new sealed
   Parquet file is noticed within 10 ms, and each row's latency is the time its file appeared
   minus the time its message was published (`sent_at`). It is bounded below by the sink's
   max_file_age, which is set to MAX_FILE_AGE.
Not a test: figures depend on the machine.
"""
import argparse
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(__file__))
from bench import SCHEMA as BENCH_SCHEMA, TRANSFORMS  # noqa: E402

SCHEMA = BENCH_SCHEMA + 'sent_at = "double"\n'

TRANSFORMS_WITH_SENT_AT = TRANSFORMS.replace(
    '{ from = "count", type = "int" },', '{ from = "count", type = "int" },\n  { from = "sent_at" },'
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(work, inflight):
    port = free_port()
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"user root\npersistence false\nmax_inflight_messages {inflight}\n"
                f"max_queued_messages 0\nmax_queued_bytes 0\nallow_anonymous true\nlistener {port} 127.0.0.1\n"
                f"log_dest file {work}/mosquitto.log\n")
    proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.01)
    raise SystemExit("mosquitto did not start")


def source_mqtt(port, inflight, client_id):
    return f"""
[source]
type = "mqtt"
url = "mqtt://127.0.0.1:{port}"
topics = ["streaming-data/+"]
client_id = "{client_id}"
max_inflight = {inflight}
max_latency = "100ms"
"""


def write_pipeline(path, source, out, max_file_age):
    with open(path, "w") as f:
        f.write(f"""
[pipeline]
name = "mqtt-bench"
{source}
batch_rows = 8192
{SCHEMA}
{TRANSFORMS_WITH_SENT_AT}
[sink]
type = "parquet"
path = "{out}"
max_file_age = "{max_file_age}"
[checkpoint]
interval = "1s"
""")


def message(n, device):
    t = 20.0 + ((n * 7919 + device * 104729) % 1000) / 100.0
    return {
        "client_id": f"device-{device}", "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "humidity": 45.5, "temperature": t, "pressure": 1013.2, "pitch": 1.5, "roll": -0.5, "yaw": 90.0,
        "count": n, "sent_at": time.time(),
    }


def publisher(port, inflight):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}-{time.time()}", clean_session=True)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    return c


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def committed_rows(out):
    files = sorted(glob.glob(os.path.join(out, "_checkpoints", "checkpoint-*.json")))
    for f in reversed(files):
        try:
            with open(f) as fh:
                return json.load(fh)["totals"]["rows_read"]
        except (OSError, ValueError, KeyError):
            continue
    return 0


def wait_connected(proc, work, client_id, seconds=120):
    """Until the broker saw the client connect (components compile first), then a moment
    for the subscription."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("sluice exited at start")
        try:
            with open(os.path.join(work, "mosquitto.log")) as f:
                if f" as {client_id} " in f.read():
                    time.sleep(0.5)
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{client_id} did not connect")


def stop(proc):
    proc.terminate()
    proc.wait(timeout=30)


def throughput(a, work, port, broker, sluice):
    out = os.path.join(work, "out-mqtt")
    toml = os.path.join(work, "mqtt.toml")
    write_pipeline(toml, source_mqtt(port, a.inflight, "sluice-bench"), out, "10s")
    # Create the persistent session, then stop: the broker queues for us from now on.
    p = subprocess.Popen([sluice, "run", toml], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_connected(p, work, "sluice-bench")
    stop(p)
    shutil.rmtree(out, ignore_errors=True)
    lines = []
    pub = publisher(port, 1000)
    t0 = time.time()
    infos = []
    for n in range(a.messages):
        m = message(n, n % 1000)
        payload = json.dumps(m)
        lines.append(payload)
        infos.append(pub.publish(f"streaming-data/device-{n % 1000}", payload, qos=1))
        if len(infos) >= 5000:
            for i in infos:
                i.wait_for_publish()
            infos.clear()
    for i in infos:
        i.wait_for_publish()
    pub_rate = a.messages / (time.time() - t0)
    pub.loop_stop()
    pub.disconnect()
    broker_cpu = cpu_seconds(broker.pid)
    start = time.time()
    p = subprocess.Popen([sluice, "run", toml], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while committed_rows(out) < a.messages:
        if time.time() - start > 600:
            raise SystemExit(f"only {committed_rows(out)} of {a.messages} committed after 600 s")
        time.sleep(0.01)
    mqtt_s = time.time() - start
    # Who was busy while the queue drained: mosquitto is one thread, so a broker near one
    # core's worth of CPU (1.00) is the limit, whatever Sluice does.
    busy = (cpu_seconds(broker.pid) - broker_cpu) / mqtt_s, cpu_seconds(p.pid) / mqtt_s
    stop(p)
    return pub_rate, a.messages / mqtt_s, busy, lines


def file_throughput(a, work, lines):
    data = os.path.join(work, "same.ndjson")
    with open(data, "w") as f:
        f.write("\n".join(lines) + "\n")
    ftoml = os.path.join(work, "file.toml")
    fout = os.path.join(work, "out-file")
    write_pipeline(ftoml, f'[source]\ntype = "file"\npath = "{data}"', fout, "10s")
    start = time.time()
    subprocess.run([a.sluice, "run", ftoml], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return a.messages / (time.time() - start)


def latency(a, work, port):
    out = os.path.join(work, "out-latency")
    toml = os.path.join(work, "latency.toml")
    write_pipeline(toml, source_mqtt(port, a.inflight, "sluice-latency"), out, a.max_file_age)
    p = subprocess.Popen([a.sluice, "run", toml], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_connected(p, work, "sluice-latency")
    seen = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for f in glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True):
                seen.setdefault(f, time.time())
            time.sleep(0.01)

    w = threading.Thread(target=watch)
    w.start()
    pub = publisher(port, 1000)
    n = 0
    start = time.time()
    while time.time() - start < a.seconds:
        tick = time.time()
        for _ in range(max(1, a.rate // 100)):
            m = message(n, n % 50)
            pub.publish(f"streaming-data/device-{n % 50}", json.dumps(m), qos=1)
            n += 1
        time.sleep(max(0.0, 0.01 - (time.time() - tick)))
    time.sleep(float(a.max_file_age.rstrip("s")) + 3)
    done.set()
    w.join()
    stop(p)
    pub.loop_stop()
    pub.disconnect()
    lat = []
    for f, at in seen.items():
        for v in pq.read_table(f, columns=["sent_at", "temperature"]).column("sent_at").to_pylist():
            if v is not None:
                lat.append(at - v)
    lat.sort()
    rows = len(lat)
    # The filter keeps temperature > 25: about half the messages.
    return n, rows, lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--inflight", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--max-file-age", default="1s")
    ap.add_argument("--baseline", help="another sluice binary, drained in the same run (interleaved rounds)")
    ap.add_argument("--rounds", type=int, default=1, help="throughput rounds per binary; the median is shown")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-mqtt-bench-")
    broker, port = start_broker(work, a.inflight)
    try:
        binaries = [("sluice", a.sluice)] + ([("baseline", a.baseline)] if a.baseline else [])
        runs = {name: [] for name, _ in binaries}
        for r in range(a.rounds):
            # Alternate which binary drains first, so a drift in the machine's speed is shared.
            for name, path in binaries if r % 2 == 0 else binaries[::-1]:
                runs[name].append(throughput(a, work, port, broker, path))
        pub_rate, _, _, lines = runs["sluice"][0]
        file_rate = file_throughput(a, work, lines)

        def median(name):
            rates = sorted(runs[name], key=lambda t: t[1])
            return rates[len(rates) // 2]

        _, mqtt_rate, (broker_busy, sluice_busy), _ = median("sluice")
        print(f"throughput: {a.messages} messages, in-flight window {a.inflight}, median of {a.rounds} round(s)")
        print(f"  publisher (paho, QoS 1)           {pub_rate:>10.0f} msg/s")
        print(f"  MQTT -> map -> filter -> Parquet  {mqtt_rate:>10.0f} msg/s   (rounds: {', '.join(f'{t[1]:.0f}' for t in runs['sluice'])})")
        if a.baseline:
            base_rate = median("baseline")[1]
            print(f"  the same with --baseline          {base_rate:>10.0f} msg/s   (rounds: {', '.join(f'{t[1]:.0f}' for t in runs['baseline'])})")
            print(f"  sluice / baseline                 {mqtt_rate / base_rate:>10.2f}")
        print(f"  same lines from a file            {file_rate:>10.0f} msg/s")
        print(f"  MQTT / file                       {mqtt_rate / file_rate:>10.2f}")
        print(f"  cores busy while draining: mosquitto {broker_busy:.2f} (one thread), sluice {sluice_busy:.2f}")
        sent, rows, p50, p99 = latency(a, work, port)
        print(f"latency: {sent} messages at ~{a.rate}/s for {a.seconds} s, max_file_age {a.max_file_age}, {rows} rows kept by the filter")
        print(f"  publish -> row in a sealed file   p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
