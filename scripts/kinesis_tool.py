#!/usr/bin/env python3
"""Producer and admin tool for the Kinesis tests, with real clients (boto3, aws_kinesis_agg).

It is the tests' independent oracle: every action appends machine-readable JSON lines to
`--log FILE` saying exactly what was put, with the shard and sequence number Kinesis gave it,
so a test compares Sluice's output with what really went into the stream.

    kinesis_tool.py --endpoint http://127.0.0.1:PORT --log put.jsonl ACTION ...

Actions:
  create       --stream S --shards N                 create, wait until ACTIVE
  put          --stream S --jsonl FILE [--key-field F] [--aggregate K [--aggregate-mixed]]
  put-cwl      --stream S --events N --groups G [--control-every C] [--seed X]
  split        --stream S --shard ID [--at HASHKEY]  wait until ACTIVE again
  merge        --stream S --shard A --adjacent B     wait until ACTIVE again
  list-shards  --stream S                            the shards as a JSON array
  read         --stream S                            every shard from TRIM_HORIZON, parents first

Log lines (one JSON object each):
  {"op":"put","stream","partition_key","data","shard","sequence","sub_sequence"}
      one per user record; sub_sequence is its index in a KPL aggregate, else null
  {"op":"put-cwl","stream","logGroup","logStream","id","timestamp","message","shard","sequence"}
      one per CloudWatch Logs event (a Kinesis record carries several)
  {"op":"put-cwl-control","stream","message","timestamp","shard","sequence"}
  {"op":"create"|"split"|"merge", ...}  the shards before and after
`read` prints one line per user record ({"op":"record",...}) and one per shard
({"op":"shard","shard","parent","adjacent_parent","records","closed","child_shards"}).

SDK retries are off (one attempt per call): the tool retries what it must itself (failed
PutRecords entries, throttled GetRecords) so that a throttling proxy's answers are seen.
"""

import argparse
import base64
import datetime
import gzip
import hashlib
import json
import os
import random
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "111111111111"
CONTROL_MESSAGE = "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024  # under the 5 MiB PutRecords limit, with room for keys


# ---------------------------------------------------------------------------------------------
# plumbing


class Log:
    """Appends JSON lines to --log (if given); flushed per line so a killed run keeps its log."""

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8") if path else None

    def write(self, obj):
        if self.file:
            self.file.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self.file.flush()


def client(args):
    return boto3.client(
        "kinesis",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
        verify=not args.no_verify_ssl,
    )


def error_code(err):
    return err.response.get("Error", {}).get("Code", "")


def wait_active(k, stream, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        except ClientError as err:
            if error_code(err) not in ("ResourceNotFoundException", "LimitExceededException"):
                raise
            status = error_code(err)
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            sys.exit(f"stream {stream} is not ACTIVE after {timeout} s (status {status})")
        time.sleep(0.05)


def list_shards(k, stream, page_size=None):
    """Every shard of the stream (closed ones too), following NextToken."""
    shards = []
    req = {"StreamName": stream}
    if page_size:
        req["MaxResults"] = page_size
    while True:
        resp = k.list_shards(**req)
        shards.extend(resp["Shards"])
        token = resp.get("NextToken")
        if not token:
            return shards
        req = {"NextToken": token}
        if page_size:
            req["MaxResults"] = page_size


def is_open(shard):
    return "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})


def hash_key(partition_key):
    """The 128-bit hash key Kinesis assigns a partition key (MD5, big-endian), spec KDS-14."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def shard_for(shards, key):
    for s in shards:
        r = s["HashKeyRange"]
        if is_open(s) and int(r["StartingHashKey"]) <= key <= int(r["EndingHashKey"]):
            return s["ShardId"]
    sys.exit(f"no open shard holds hash key {key}")


def parents_first(shards):
    """Shards ordered so that every parent comes before its children (ties by shard id)."""
    ids = {s["ShardId"] for s in shards}
    done, out = set(), []
    pending = sorted(shards, key=lambda s: s["ShardId"])
    while pending:
        progressed = False
        for s in list(pending):
            parents = [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p in ids]
            if all(p in done for p in parents):
                out.append(s)
                done.add(s["ShardId"])
                pending.remove(s)
                progressed = True
                break
        if not progressed:
            sys.exit(f"shard lineage has a cycle: {[s['ShardId'] for s in pending]}")
    return out


def put_entries(k, stream, entries, on_success, sleep=0.05):
    """PutRecords in batches of at most 500 records / 4 MiB. Failed entries are retried, in
    their original order, until they succeed; `on_success(entry, result)` is called once per
    entry, in the order Kinesis accepted them."""
    pending = list(entries)
    attempts = 0
    while pending:
        batch, size = [], 0
        for e in pending:
            n = len(e["Data"]) + len(e["PartitionKey"])
            if batch and (len(batch) == MAX_BATCH_RECORDS or size + n > MAX_BATCH_BYTES):
                break
            batch.append(e)
            size += n
        try:
            resp = k.put_records(StreamName=stream, Records=[api_entry(e) for e in batch])
        except ClientError as err:
            if error_code(err) not in ("ProvisionedThroughputExceededException", "LimitExceededException"):
                raise
            attempts += 1
            if attempts > 100:
                raise
            time.sleep(sleep)
            continue
        failed = []
        for e, r in zip(batch, resp["Records"]):
            if "ErrorCode" in r:
                failed.append(e)
            else:
                on_success(e, r)
        rest = pending[len(batch) :]
        pending = failed + rest
        if failed:
            attempts += 1
            if attempts > 100:
                sys.exit(f"PutRecords kept failing: {resp['Records'][:3]}")
            time.sleep(sleep)


def api_entry(e):
    out = {"Data": e["Data"], "PartitionKey": e["PartitionKey"]}
    if e.get("ExplicitHashKey"):
        out["ExplicitHashKey"] = e["ExplicitHashKey"]
    return out


# ---------------------------------------------------------------------------------------------
# actions


def cmd_create(args, k, log):
    k.create_stream(StreamName=args.stream, ShardCount=args.shards)
    wait_active(k, args.stream)
    shards = list_shards(k, args.stream)
    log.write({"op": "create", "stream": args.stream, "shards": [s["ShardId"] for s in shards]})
    print(json.dumps(shards))


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def key_of(line, field, counter):
    """The line's value of `field` as the partition key; lines that are not JSON objects or
    lack the field (e.g. deliberately malformed ones) get the counter."""
    if field:
        try:
            doc = json.loads(line)
            if isinstance(doc, dict) and doc.get(field) not in (None, ""):
                value = doc[field]
                return value if isinstance(value, str) else json.dumps(value)
        except ValueError:
            pass
    return str(counter)


def cmd_put(args, k, log):
    from aws_kinesis_agg.aggregator import AggRecord

    lines = read_lines(args.jsonl)
    users = [{"partition_key": key_of(line, args.key_field, i), "data": line} for i, line in enumerate(lines)]
    entries = []
    if not args.aggregate:
        for u in users:
            entries.append({"Data": u["data"].encode("utf-8"), "PartitionKey": u["partition_key"], "users": [u]})
    else:
        # Like the KPL: aggregate only records bound for the same shard (by the hash ranges of
        # the open shards now), so that every sub-record lies in the shard that stores the
        # aggregate. --aggregate-mixed packs consecutive records regardless (spec KPL-03).
        shards = list_shards(k, args.stream)
        buffers = {}

        def flush(target):
            group = buffers.pop(target, [])
            if not group:
                return
            agg = AggRecord()
            for u in group:
                if not agg.add_user_record(u["partition_key"], u["data"].encode("utf-8")):
                    sys.exit("an aggregate outgrew 1 MiB; use a smaller --aggregate")
            # The aggregate's partition key is its first user record's, which decides the shard.
            pk, _, data = agg.get_contents()
            entries.append({"Data": data, "PartitionKey": pk, "users": group})

        for u in users:
            target = "mixed" if args.aggregate_mixed else shard_for(shards, hash_key(u["partition_key"]))
            buffers.setdefault(target, []).append(u)
            if len(buffers[target]) == args.aggregate:
                flush(target)
        for target in sorted(buffers):
            flush(target)

    count = [0, 0]

    def done(entry, result):
        count[0] += 1
        aggregated = len(entry["users"]) > 1 or bool(args.aggregate)
        for i, u in enumerate(entry["users"]):
            count[1] += 1
            log.write(
                {
                    "op": "put",
                    "stream": args.stream,
                    "partition_key": u["partition_key"],
                    "data": u["data"],
                    "shard": result["ShardId"],
                    "sequence": result["SequenceNumber"],
                    "sub_sequence": i if aggregated else None,
                }
            )

    put_entries(k, args.stream, entries, done)
    print(json.dumps({"op": "put", "kinesis_records": count[0], "user_records": count[1]}))


def event_id(rng):
    """A 56-digit decimal id like CloudWatch Logs gives its events."""
    return str(rng.randint(10**55, 10**56 - 1))


def cwl_message(rng, i):
    kind = i % 4
    if kind in (0, 2):
        doc = {"is_save_kinesis": True, "device": f"d-{rng.randint(0, 9)}", "value": round(rng.uniform(-10, 40), 1)}
        return json.dumps(doc)
    if kind == 1:
        return f"START RequestId: {rng.getrandbits(64):016x} Version: $LATEST"
    return json.dumps({"level": "info", "msg": f"processed batch {i}", "items": rng.randint(0, 100)})


def cmd_put_cwl(args, k, log):
    rng = random.Random(args.seed)
    start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000) - args.events * args.step_ms
    streams = [(f"/aws/lambda/app-{g}", f"2026/01/01/[$LATEST]{g:02d}{s:030x}") for g in range(args.groups) for s in range(2)]
    envelopes = []
    i = 0
    while i < args.events:
        group, stream = streams[rng.randrange(len(streams))]
        n = min(rng.randint(1, 5), args.events - i)
        events = []
        for _ in range(n):
            events.append({"id": event_id(rng), "timestamp": start_ms + i * args.step_ms, "message": cwl_message(rng, i)})
            i += 1
        envelopes.append(
            {
                "owner": ACCOUNT,
                "logGroup": group,
                "logStream": stream,
                "subscriptionFilters": [f"sluice-{group.rsplit('/', 1)[-1]}"],
                "messageType": "DATA_MESSAGE",
                "logEvents": events,
            }
        )
    entries = []
    for n, env in enumerate(envelopes):
        if args.control_every and n % args.control_every == 0:
            control = {
                "messageType": "CONTROL_MESSAGE",
                "owner": "CloudwatchLogs",
                "logGroup": "",
                "logStream": "",
                "subscriptionFilters": [],
                "logEvents": [{"id": "", "timestamp": int(time.time() * 1000), "message": CONTROL_MESSAGE}],
            }
            entries.append({"Data": gzip_json(control), "PartitionKey": f"control-{n}", "envelope": control})
        # CloudWatch Logs gzips each envelope; the partition key follows the log stream.
        entries.append({"Data": gzip_json(env), "PartitionKey": env["logStream"], "envelope": env})

    counts = {"kinesis_records": 0, "events": 0, "controls": 0}

    def done(entry, result):
        env = entry["envelope"]
        counts["kinesis_records"] += 1
        where = {"shard": result["ShardId"], "sequence": result["SequenceNumber"]}
        if env["messageType"] == "CONTROL_MESSAGE":
            counts["controls"] += 1
            ev = env["logEvents"][0]
            log.write({"op": "put-cwl-control", "stream": args.stream, "message": ev["message"], "timestamp": ev["timestamp"], **where})
            return
        for ev in env["logEvents"]:
            counts["events"] += 1
            log.write(
                {
                    "op": "put-cwl",
                    "stream": args.stream,
                    "logGroup": env["logGroup"],
                    "logStream": env["logStream"],
                    "id": ev["id"],
                    "timestamp": ev["timestamp"],
                    "message": ev["message"],
                    **where,
                }
            )

    put_entries(k, args.stream, entries, done)
    print(json.dumps({"op": "put-cwl", **counts}))


def gzip_json(doc):
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), compresslevel=6, mtime=0)


def shard_by_id(k, stream, shard_id):
    for s in list_shards(k, stream):
        if s["ShardId"] == shard_id:
            return s
    sys.exit(f"stream {stream} has no shard {shard_id}")


def children_of(shards, *parents):
    return [s["ShardId"] for s in shards if s.get("ParentShardId") in parents or s.get("AdjacentParentShardId") in parents]


def cmd_split(args, k, log):
    shard = shard_by_id(k, args.stream, args.shard)
    lo, hi = (int(shard["HashKeyRange"][x]) for x in ("StartingHashKey", "EndingHashKey"))
    at = int(args.at) if args.at else lo + (hi - lo + 1) // 2
    k.split_shard(StreamName=args.stream, ShardToSplit=args.shard, NewStartingHashKey=str(at))
    wait_active(k, args.stream)
    shards = list_shards(k, args.stream)
    record = {"op": "split", "stream": args.stream, "shard": args.shard, "at": str(at), "children": children_of(shards, args.shard)}
    log.write(record)
    print(json.dumps(record))


def cmd_merge(args, k, log):
    k.merge_shards(StreamName=args.stream, ShardToMerge=args.shard, AdjacentShardToMerge=args.adjacent)
    wait_active(k, args.stream)
    shards = list_shards(k, args.stream)
    record = {
        "op": "merge",
        "stream": args.stream,
        "shard": args.shard,
        "adjacent": args.adjacent,
        "children": children_of(shards, args.shard, args.adjacent),
    }
    log.write(record)
    print(json.dumps(record))


def cmd_list_shards(args, k, log):
    print(json.dumps(list_shards(k, args.stream, args.page_size)))


def user_records(record):
    """The user records in one Kinesis record: a KPL aggregate's sub-records (deaggregated by
    aws_kinesis_agg, as the KCL does), else the record itself."""
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    subs = list(iter_deaggregate_records(dict(record), data_format="Boto3"))
    aggregated = "subSequenceNumber" in subs[0]["kinesis"] if subs else False
    out = []
    for sub in subs:
        kin = sub["kinesis"]
        # Sub-records come back base64-encoded (as Lambda delivers them); a plain record as is.
        data = base64.b64decode(kin["data"]) if aggregated else kin["data"]
        out.append((kin["partitionKey"], data, kin.get("subSequenceNumber") if aggregated else None))
    return out


def describe_data(data):
    try:
        return {"data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data_base64": base64.b64encode(data).decode("ascii")}


def get_records(k, shard_iterator, limit, counters):
    """GetRecords, retrying throttles (never with a new iterator: the position must not move)."""
    while True:
        try:
            return k.get_records(ShardIterator=shard_iterator, Limit=limit)
        except ClientError as err:
            if error_code(err) != "ProvisionedThroughputExceededException":
                raise
            counters["throttled"] += 1
            if len(counters["throttles"]) < 20:
                meta = err.response.get("ResponseMetadata", {})
                counters["throttles"].append({"status": meta.get("HTTPStatusCode"), "message": err.response["Error"].get("Message")})
            if counters["throttled"] > 10000:
                raise
            time.sleep(counters["backoff"])


def cmd_read(args, k, log):
    counters = {"throttled": 0, "throttles": [], "backoff": args.throttle_backoff}
    shards = parents_first(list_shards(k, args.stream))
    for shard in shards:
        sid = shard["ShardId"]
        it = k.get_shard_iterator(StreamName=args.stream, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        n, closed, children, last_seq, empty = 0, False, [], None, 0
        while True:
            try:
                resp = get_records(k, it, args.limit, counters)
            except ClientError as err:
                if error_code(err) != "ExpiredIteratorException" or last_seq is None:
                    raise
                it = k.get_shard_iterator(
                    StreamName=args.stream, ShardId=sid, ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=last_seq
                )["ShardIterator"]
                continue
            for r in resp["Records"]:
                last_seq = r["SequenceNumber"]
                arrival = r["ApproximateArrivalTimestamp"]
                for pk, data, sub in user_records(r):
                    n += 1
                    line = {
                        "op": "record",
                        "shard": sid,
                        "sequence": r["SequenceNumber"],
                        "sub_sequence": sub,
                        "partition_key": pk,
                        "arrival": arrival.timestamp() if hasattr(arrival, "timestamp") else arrival,
                        **describe_data(data),
                    }
                    print(json.dumps(line, ensure_ascii=False))
            nxt = resp.get("NextShardIterator")
            if not nxt:
                closed = True
                children = resp.get("ChildShards", [])
                break
            it = nxt
            # An open shard is read to its tip: an empty answer with nothing behind it.
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                empty += 1
                if empty >= args.empty_polls:
                    break
            else:
                empty = 0
        line = {
            "op": "shard",
            "shard": sid,
            "parent": shard.get("ParentShardId"),
            "adjacent_parent": shard.get("AdjacentParentShardId"),
            "records": n,
            "closed": closed,
            "child_shards": children,
        }
        print(json.dumps(line))
        log.write(line)
    # The throttles seen (status and message of the first 20), for tests of a throttling proxy.
    summary = {"op": "read", "stream": args.stream, "throttled": counters["throttled"], "throttles": counters["throttles"]}
    print(json.dumps(summary))


# ---------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default=os.environ.get("SLUICE_KINESIS_ENDPOINT", "http://127.0.0.1:4568"))
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    p.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "sluice-test"))
    p.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "sluice-test"))
    p.add_argument("--no-verify-ssl", action="store_true", help="accept the emulator's self-signed certificate")
    p.add_argument("--log", help="append JSON lines saying what was done to this file")
    sub = p.add_subparsers(dest="action", required=True)

    s = sub.add_parser("create")
    s.add_argument("--stream", required=True)
    s.add_argument("--shards", type=int, default=1)
    s.set_defaults(run=cmd_create)

    s = sub.add_parser("put")
    s.add_argument("--stream", required=True)
    s.add_argument("--jsonl", required=True, help="one record per non-empty line")
    s.add_argument("--key-field", help="partition key = this field of the line (else a counter)")
    s.add_argument("--aggregate", type=int, default=0, help="pack K user records into one KPL aggregate")
    s.add_argument("--aggregate-mixed", action="store_true", help="aggregate consecutive records across shards")
    s.set_defaults(run=cmd_put)

    s = sub.add_parser("put-cwl")
    s.add_argument("--stream", required=True)
    s.add_argument("--events", type=int, required=True)
    s.add_argument("--groups", type=int, default=1)
    s.add_argument("--control-every", type=int, default=0, help="a CONTROL_MESSAGE before every C-th envelope")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start-ms", type=int, help="first event's timestamp (ms); default: now minus the span")
    s.add_argument("--step-ms", type=int, default=100)
    s.set_defaults(run=cmd_put_cwl)

    s = sub.add_parser("split")
    s.add_argument("--stream", required=True)
    s.add_argument("--shard", required=True)
    s.add_argument("--at", help="new starting hash key (default: the middle of the shard's range)")
    s.set_defaults(run=cmd_split)

    s = sub.add_parser("merge")
    s.add_argument("--stream", required=True)
    s.add_argument("--shard", required=True)
    s.add_argument("--adjacent", required=True)
    s.set_defaults(run=cmd_merge)

    s = sub.add_parser("list-shards")
    s.add_argument("--stream", required=True)
    s.add_argument("--page-size", type=int)
    s.set_defaults(run=cmd_list_shards)

    s = sub.add_parser("read")
    s.add_argument("--stream", required=True)
    s.add_argument("--limit", type=int, default=1000)
    s.add_argument("--empty-polls", type=int, default=1, help="empty answers at the tip that end an open shard")
    s.add_argument("--throttle-backoff", type=float, default=0.05, help="seconds to wait after a throttle")
    s.set_defaults(run=cmd_read)

    args = p.parse_args()
    args.run(args, client(args), Log(args.log))


if __name__ == "__main__":
    main()
