//! The Kinesis test infrastructure, proven on its own (no sluice yet): the emulator serves a
//! split as AWS does, the producer's log says exactly what a reader gets back, and the
//! throttling proxy answers GetRecords with 400 ProvisionedThroughputExceededException.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::kinesis_emulator::{Kinesis, ThrottleProxy, json_lines, python, tool};

/// `count` JSON lines for devices d-0..d-3, numbered from `first`.
fn write_lines(path: &Path, first: usize, count: usize) {
    let text: String = (first..first + count)
        .map(|n| format!("{{\"device\":\"d-{}\",\"n\":{n},\"value\":{}.5}}\n", n % 4, n * 3))
        .collect();
    std::fs::write(path, text).expect("input lines");
}

/// (shard, sequence, sub-sequence, partition key, data) of each record, sorted.
fn identities(lines: &[Value], op: &str) -> Vec<(String, String, Option<u64>, String, String)> {
    let mut out: Vec<_> = lines
        .iter()
        .filter(|l| l["op"] == op)
        .map(|l| {
            (
                l["shard"].as_str().expect("shard").to_owned(),
                l["sequence"].as_str().expect("sequence").to_owned(),
                l["sub_sequence"].as_u64(),
                l["partition_key"].as_str().expect("partition key").to_owned(),
                l["data"].as_str().expect("UTF-8 data").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Sequence numbers are decimal strings longer than u64: compare by length, then digits.
pub(crate) fn seq_key(s: &str) -> (usize, &str) {
    (s.len(), s)
}

#[test]
fn kinesis_emulator_serves_resharding_as_aws_does() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("put.jsonl");
    let log_arg = log.to_str().expect("utf-8 path");
    let run = |args: &[&str]| {
        let mut all = vec!["--log", log_arg];
        all.extend_from_slice(args);
        tool(&python, &kinesis.endpoint, &all)
    };
    let [plain, aggregated, after] = ["plain", "aggregated", "after"].map(|n| dir.path().join(format!("{n}.jsonl")));
    write_lines(&plain, 0, 10);
    write_lines(&aggregated, 10, 10);
    write_lines(&after, 20, 10);
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();

    run(&["create", "--stream", "s", "--shards", "1"]);
    run(&[
        "put",
        "--stream",
        "s",
        "--jsonl",
        &path(&plain),
        "--key-field",
        "device",
    ]);
    run(&[
        "put",
        "--stream",
        "s",
        "--jsonl",
        &path(&aggregated),
        "--key-field",
        "device",
        "--aggregate",
        "5",
    ]);
    let split: Value = serde_json::from_str(&run(&["split", "--stream", "s", "--shard", "shardId-000000000000"]))
        .expect("split answer");
    run(&[
        "put",
        "--stream",
        "s",
        "--jsonl",
        &path(&after),
        "--key-field",
        "device",
    ]);

    let put = json_lines(&std::fs::read_to_string(&log).expect("producer log"));
    let read = json_lines(&tool(&python, &kinesis.endpoint, &["read", "--stream", "s"]));

    // The split: two children of shard 0, which is closed and whose last GetRecords has no
    // NextShardIterator and names both children with their parent.
    let children: Vec<&str> = split["children"]
        .as_array()
        .expect("children")
        .iter()
        .map(|c| c.as_str().expect("id"))
        .collect();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"], "{split}");
    let shards: BTreeMap<&str, &Value> = read
        .iter()
        .filter(|l| l["op"] == "shard")
        .map(|l| (l["shard"].as_str().expect("id"), l))
        .collect();
    let parent = shards["shardId-000000000000"];
    assert_eq!(parent["closed"], true, "{parent}");
    assert_eq!(parent["records"], 20, "{parent}");
    let child_shards = parent["child_shards"].as_array().expect("ChildShards");
    let listed: Vec<&str> = child_shards
        .iter()
        .map(|c| c["ShardId"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, children, "{parent}");
    for c in child_shards {
        assert_eq!(c["ParentShards"], serde_json::json!(["shardId-000000000000"]), "{c}");
    }
    for id in &children {
        assert_eq!(shards[id]["closed"], false, "{}", shards[id]);
        assert_eq!(shards[id]["parent"], "shardId-000000000000", "{}", shards[id]);
    }

    // The same stream over TLS (the emulator's self-signed certificate).
    let over_tls = tool(
        &python,
        &kinesis.tls_endpoint,
        &["--no-verify-ssl", "list-shards", "--stream", "s"],
    );
    let over_tls: Vec<Value> = serde_json::from_str(&over_tls).expect("shards");
    assert_eq!(over_tls.len(), 3, "{over_tls:?}");

    // Every record put comes back exactly once, where the producer says it went.
    let records: Vec<&Value> = read.iter().filter(|l| l["op"] == "record").collect();
    assert_eq!(records.len(), 30);
    assert_eq!(identities(&put, "put"), identities(&read, "record"));
    // The ten after the split are in the children; the parent's are read first, in order.
    let puts: Vec<&Value> = put.iter().filter(|l| l["op"] == "put").collect();
    assert!(
        puts[20..]
            .iter()
            .all(|p| children.contains(&p["shard"].as_str().expect("id")))
    );
    let first_child = records
        .iter()
        .position(|r| r["shard"] != "shardId-000000000000")
        .expect("child records");
    assert_eq!(first_child, 20, "parent records come before children's");
    let parent_seqs: Vec<&str> = records[..20]
        .iter()
        .map(|r| r["sequence"].as_str().expect("seq"))
        .collect();
    assert!(
        parent_seqs.windows(2).all(|w| seq_key(w[0]) <= seq_key(w[1])),
        "{parent_seqs:?}"
    );
    assert!(
        parent_seqs
            .iter()
            .all(|s| s.len() > 20 && s.bytes().all(|b| b.is_ascii_digit()))
    );

    // Two KPL aggregates of five: one sequence number each, sub-sequences 0..4.
    let mut aggregates: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in records.iter().filter(|r| !r["sub_sequence"].is_null()) {
        let seq = r["sequence"].as_str().expect("seq");
        aggregates
            .entry(seq)
            .or_default()
            .push(r["sub_sequence"].as_u64().expect("sub"));
    }
    assert_eq!(aggregates.len(), 2, "{aggregates:?}");
    assert!(
        aggregates.values().all(|subs| subs == &[0, 1, 2, 3, 4]),
        "{aggregates:?}"
    );
}

#[test]
fn kinesis_throttle_proxy_answers_get_records_400_then_forwards() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.jsonl");
    write_lines(&input, 0, 5);
    let input = input.to_str().expect("utf-8 path");
    tool(
        &python,
        &kinesis.endpoint,
        &["create", "--stream", "t", "--shards", "1"],
    );
    tool(&python, &kinesis.endpoint, &["put", "--stream", "t", "--jsonl", input]);

    let proxy = ThrottleProxy::start(&python, &kinesis.endpoint, &["--throttle-getrecords", "3"]);
    let read = json_lines(&tool(&python, &proxy.endpoint, &["read", "--stream", "t"]));

    let summary = read.last().expect("a summary");
    assert_eq!(summary["throttled"], 3, "{summary}");
    for t in summary["throttles"].as_array().expect("throttles") {
        assert_eq!(t["status"], 400, "{t}");
        let message = t["message"].as_str().expect("message");
        assert!(
            message.starts_with("Rate exceeded for shard shardId-000000000000 in stream t"),
            "{message}"
        );
    }
    let records: Vec<&Value> = read.iter().filter(|l| l["op"] == "record").collect();
    assert_eq!(records.len(), 5, "every record is read once despite the throttling");

    let stats = proxy.stats();
    assert_eq!(stats["throttled"], 3, "{stats}");
    let forwarded = &stats["forwarded"];
    assert!(
        forwarded["Kinesis_20131202.GetRecords"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    assert_eq!(forwarded["Kinesis_20131202.GetShardIterator"], 1, "{stats}");
    assert_eq!(forwarded["Kinesis_20131202.ListShards"], 1, "{stats}");
}
