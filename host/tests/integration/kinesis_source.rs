//! The Kinesis source against a real Kinesis (kinesis-local), with records put by real
//! clients (boto3, aws-kinesis-agg) and checked against the producer's log with DuckDB.
//!
//! The per-key oracle: every record carries its device and `n`, the device's running count
//! at the producer; the pipeline's stateful counter stage appends `seen`, the device's
//! running count as sluice delivered the rows. `seen == n` on every row, with every `(device,
//! n)` once, proves per-key order (parents before children), no loss and no duplicate, in the
//! output and in the checkpointed state alike.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::kinesis_emulator::{Kinesis, ThrottleProxy, json_lines, merge, python, tool};
use crate::support::{dead_letters, duckdb, run, sluice};

/// Lines for `devices` devices, each device's `n` continuing from `from[device]`.
pub(crate) fn lines(path: &Path, devices: usize, per_device: usize, next: &mut Vec<u64>) {
    next.resize(devices, 1);
    let mut text = String::new();
    for _ in 0..per_device {
        for (d, n) in next.iter_mut().enumerate() {
            text.push_str(&format!("{{\"device\":\"d-{d}\",\"n\":{n},\"value\":{}.25}}\n", *n * 3));
            *n += 1;
        }
    }
    std::fs::write(path, text).expect("input lines");
}

/// A JSON pipeline with the counter stage; `extra` goes into `[source]`.
fn pipeline(dir: &Path, endpoint: &str, stream: &str, extra: &str) -> PathBuf {
    let counter = Path::new(env!("SLUICE_PLUGIN_DIR")).join("sluice_test_counter.wasm");
    let text = format!(
        r#"
[source]
type = "kinesis"
stream = "{stream}"
region = "us-east-1"
endpoint_url = "{endpoint}"
idle_poll = "200ms"
metadata = {{ shard = "_shard", sequence = "_seq", partition_key = "_pk", arrival = "_arrival" }}
{extra}
[source.schema]
device = "string"
n = "int64"
value = "double"
[[transform]]
name = "count"
component = "{counter}"
config = {{ key = "device" }}
[sink]
type = "parquet"
path = "out"
target_file_mb = 1
max_file_age = "200ms"
[dead_letter]
path = "dead"
[checkpoint]
path = "cp"
interval = "50ms"
"#,
        counter = counter.display()
    );
    let path = dir.join(format!("pipeline-{}.toml", extra.len()));
    std::fs::write(&path, text).expect("pipeline");
    path
}

/// Credentials for the emulator (any will do; the SDK's default chain reads these).
pub(crate) fn aws_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

/// Run to the stream's tip (`end = "caught_up"`) and succeed.
fn run_to_tip(pipeline: &Path) -> String {
    let out = run(aws_env(sluice().arg("run").arg(pipeline)));
    assert!(out.status.success(), "sluice run failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (device, n) of every user record the producer logged.
pub(crate) fn produced(log: &Path) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = json_lines(&std::fs::read_to_string(log).expect("log"))
        .iter()
        .filter(|l| l["op"] == "put")
        .map(|l| {
            let row: Value = serde_json::from_str(l["data"].as_str().expect("data")).expect("json");
            (
                row["device"].as_str().expect("device").to_owned(),
                row["n"].as_i64().expect("n"),
            )
        })
        .collect();
    out.sort();
    out
}

/// A row as DuckDB gave it.
pub(crate) type Row = serde_json::Map<String, Value>;

/// The counter pipeline's output rows (`device`, `n`, `seen`) in device and `n` order, and
/// their `(device, n)`.
pub(crate) fn counted_rows(python: &Path, dir: &Path) -> (Vec<Row>, Vec<(String, i64)>) {
    let rows = duckdb(
        python,
        &format!(
            "select device, n, seen from read_parquet('{}/**/*.parquet') order by device, n",
            dir.join("out").display()
        ),
    );
    let keys = rows
        .iter()
        .map(|r| {
            (
                r["device"].as_str().expect("device").to_owned(),
                r["n"].as_i64().expect("n"),
            )
        })
        .collect();
    (rows, keys)
}

/// The output checked by value: every produced `(device, n)` once, and `seen == n`.
pub(crate) fn assert_exactly_once_in_order(python: &Path, dir: &Path, log: &Path) {
    let (rows, got) = counted_rows(python, dir);
    let want = produced(log);
    assert_eq!(got.len(), want.len(), "rows written vs records put");
    assert_eq!(got, want, "every record put, once");
    let out_of_order: Vec<_> = rows.iter().filter(|r| r["seen"] != r["n"]).take(5).collect();
    assert!(
        out_of_order.is_empty(),
        "rows delivered out of per-key order, lost or repeated (seen != n): {out_of_order:?}"
    );
}

pub(crate) fn put(python: &Path, endpoint: &str, log: &Path, file: &Path, aggregate: Option<&str>) {
    let mut args = vec![
        "--log",
        log.to_str().expect("utf-8"),
        "put",
        "--stream",
        "s",
        "--jsonl",
        file.to_str().expect("utf-8"),
        "--key-field",
        "device",
    ];
    if let Some(k) = aggregate {
        args.extend(["--aggregate", k]);
    }
    tool(python, endpoint, &args);
}

/// KDS-17/18/19 and KPL-02: a split, then a merge, while the parents still hold a backlog
/// (plain records and KPL aggregates): each key's records come out parent before child,
/// nothing lost or repeated; the metadata columns name each record's shard and sequence.
#[test]
fn kds_18_split_then_merge_with_a_backlog_parents_before_children_exactly_once() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let log = d.join("put.jsonl");
    let ep = &kinesis.endpoint;
    let mut next = Vec::new();
    tool(&python, ep, &["create", "--stream", "s", "--shards", "2"]);
    for (round, aggregate) in [(0, None), (1, Some("5"))] {
        let f = d.join(format!("a{round}.jsonl"));
        lines(&f, 8, 10, &mut next);
        put(&python, ep, &log, &f, aggregate);
    }
    tool(
        &python,
        ep,
        &["split", "--stream", "s", "--shard", "shardId-000000000000"],
    );
    let f = d.join("b.jsonl");
    lines(&f, 8, 10, &mut next);
    put(&python, ep, &log, &f, Some("4"));
    // Shard 3 (the upper half of shard 0) and shard 1 are adjacent: merge them into 4.
    merge(&python, ep, "s", "shardId-000000000003", "shardId-000000000001");
    let f = d.join("c.jsonl");
    lines(&f, 8, 10, &mut next);
    put(&python, ep, &log, &f, None);

    let p = pipeline(d, ep, "s", "end = \"caught_up\"\nbatch_rows = 7");
    let stdout = run_to_tip(&p);
    assert_exactly_once_in_order(&python, d, &log);

    // Metadata: each row's shard, sequence and partition key are the producer's.
    let logged: std::collections::BTreeMap<(String, i64), (String, String)> =
        json_lines(&std::fs::read_to_string(&log).expect("log"))
            .iter()
            .filter(|l| l["op"] == "put")
            .map(|l| {
                let row: Value = serde_json::from_str(l["data"].as_str().expect("data")).expect("json");
                (
                    (
                        row["device"].as_str().expect("d").to_owned(),
                        row["n"].as_i64().expect("n"),
                    ),
                    (
                        l["shard"].as_str().expect("shard").to_owned(),
                        l["sequence"].as_str().expect("seq").to_owned(),
                    ),
                )
            })
            .collect();
    let rows = duckdb(
        &python,
        &format!(
            "select device, n, _shard, _seq, _pk, _arrival is not null as arrived from read_parquet('{}/out/**/*.parquet')",
            d.display()
        ),
    );
    for r in &rows {
        let key = (r["device"].as_str().expect("d").to_owned(), r["n"].as_i64().expect("n"));
        let (shard, seq) = &logged[&key];
        assert_eq!(r["_shard"].as_str(), Some(shard.as_str()), "{r:?}");
        assert_eq!(r["_seq"].as_str(), Some(seq.as_str()), "{r:?}");
        assert_eq!(r["_pk"], r["device"], "{r:?}");
        assert_eq!(r["arrived"], true, "{r:?}");
    }
    assert!(stdout.contains("lag"), "the summary shows each shard's lag: {stdout}");

    // Closed shards left the checkpoint once their children started; the open ones remain.
    let last = last_checkpoint(&d.join("cp"));
    let partitions: Vec<&String> = last["position"]["partitions"]
        .as_object()
        .expect("partitions")
        .keys()
        .collect();
    assert_eq!(partitions, ["shardId-000000000002", "shardId-000000000004"], "{last}");

    // A second run finds nothing new and writes nothing.
    let again = run_to_tip(&p);
    assert!(again.contains("read          0 rows"), "{again}");
    assert_exactly_once_in_order(&python, d, &log);
}

fn last_checkpoint(dir: &Path) -> Value {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("checkpoints")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let last = files.last().expect("a checkpoint");
    serde_json::from_str(&std::fs::read_to_string(last).expect("read")).expect("json")
}

/// The epoch of the newest checkpoint committed so far (the store keeps the last few).
fn checkpoints(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("checkpoint-")?.strip_suffix(".json")?.parse().ok()
            })
            .max()
            .unwrap_or(0)
    })
}

fn spawn(pipeline: &Path, dir: &Path) -> Child {
    aws_env(&mut sluice())
        .arg("run")
        .arg(pipeline)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice")
}

/// KPL-04 and exactly once across crashes: SIGKILLs at seeded moments after a checkpoint
/// advanced, while KPL aggregates arrive and a shard splits, chunks cut inside aggregates
/// (batch_rows 3, aggregates of 5). Every restart resumes mid-aggregate where it must; the
/// final output holds every record once, in per-key order, and the counter's state agrees.
#[test]
fn kpl_04_sigkills_during_a_kpl_stream_with_a_split_lose_and_repeat_nothing() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let log = d.join("put.jsonl");
    let ep = &kinesis.endpoint;
    let mut next = Vec::new();
    tool(&python, ep, &["create", "--stream", "s", "--shards", "2"]);
    // Three aggregates (15 rows) per GetRecords, a read every 200 ms per shard: a round's
    // records take seconds to read, and the kill lands while they are being read.
    let endless = pipeline(d, ep, "s", "batch_rows = 3\nmax_records = 3");
    let to_tip = pipeline(d, ep, "s", "batch_rows = 3\nend = \"caught_up\"");
    let mut seed: u64 = 0x5eed_0015;
    let mut kills = 0;
    for round in 0..6 {
        let f = d.join(format!("r{round}.jsonl"));
        lines(&f, 6, 30, &mut next);
        let before = checkpoints(&d.join("cp"));
        let mut child = spawn(&endless, d);
        put(&python, ep, &log, &f, Some("5"));
        if round == 2 {
            tool(
                &python,
                ep,
                &["split", "--stream", "s", "--shard", "shardId-000000000001"],
            );
        }
        // Wait for progress (a checkpoint of this run), not for the clock.
        while checkpoints(&d.join("cp")) <= before {
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("sluice exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 700));
        child.kill().expect("SIGKILL");
        child.wait().ok();
        kills += 1;
    }
    assert_eq!(kills, 6);
    run_to_tip(&to_tip);
    assert_exactly_once_in_order(&python, d, &log);
}

/// A 2-shard stream of `per_device` records for 4 devices (KPL aggregates of `aggregate`),
/// read to the tip through the fault proxy started with `proxy_args`: every record once, in
/// per-key order. The proxy's counts.
fn through_proxy(proxy_args: &[&str], per_device: usize, aggregate: Option<&str>, source: &str) -> Option<Value> {
    let python = python()?;
    let kinesis = Kinesis::start()?;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let log = d.join("put.jsonl");
    let mut next = Vec::new();
    tool(
        &python,
        &kinesis.endpoint,
        &["create", "--stream", "s", "--shards", "2"],
    );
    let f = d.join("a.jsonl");
    lines(&f, 4, per_device, &mut next);
    put(&python, &kinesis.endpoint, &log, &f, aggregate);
    let proxy = ThrottleProxy::start(&python, &kinesis.endpoint, proxy_args);
    let p = pipeline(d, &proxy.endpoint, "s", &format!("end = \"caught_up\"\n{source}"));
    run_to_tip(&p);
    assert_exactly_once_in_order(&python, d, &log);
    Some(proxy.stats())
}

/// KDS-07: GetRecords answered `ProvisionedThroughputExceededException` for a while: the
/// reads back off and recover, and nothing is lost or read twice.
#[test]
fn kds_07_throttled_reads_back_off_and_lose_nothing() {
    let Some(stats) = through_proxy(&["--throttle-getrecords", "6"], 25, None, "max_records = 20") else {
        return;
    };
    assert_eq!(stats["throttled"], 6, "{stats}");
}

/// KDS-03: iterators that expire between reads (the proxy answers ExpiredIteratorException
/// for any iterator older than 0.1 s, so every read after the first needs a new one) are
/// renewed after the last record read: every record once, in per-key order.
#[test]
fn kds_03_expired_iterators_are_renewed_after_the_last_record_read() {
    let Some(stats) = through_proxy(&["--expire-iterators-after", "0.1"], 15, Some("3"), "max_records = 2") else {
        return;
    };
    assert!(stats["expired"].as_u64().is_some_and(|n| n >= 5), "{stats}");
}

/// Scenario 2 (CWL-01..04): gzip CloudWatch Logs envelopes, control messages among them →
/// one row per log event, filtered to the lines with `is_save_kinesis`; exactly the
/// matching events of the producer's log, by value; control messages give no row and no
/// dead letter.
#[test]
fn cwl_cloudwatch_logs_envelopes_become_the_matching_log_events() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let log = d.join("put.jsonl");
    let ep = &kinesis.endpoint;
    tool(&python, ep, &["create", "--stream", "cloudwatch-logs", "--shards", "2"]);
    tool(
        &python,
        ep,
        &[
            "--log",
            log.to_str().expect("utf-8"),
            "put-cwl",
            "--stream",
            "cloudwatch-logs",
            "--events",
            "400",
            "--groups",
            "3",
            "--control-every",
            "5",
            "--seed",
            "7",
        ],
    );
    let p = example("cloudwatch-logs.toml", d, ep, "out");
    run_to_tip(&p);
    let put = json_lines(&std::fs::read_to_string(&log).expect("log"));
    assert!(
        put.iter().any(|l| l["op"] == "put-cwl-control"),
        "control messages were put"
    );
    // (id, logGroup, message, event time in ms) of a logged event or an output row.
    let event = |v: &Value, ms: &str| {
        let text = |k: &str| v[k].as_str().expect(k).to_owned();
        (text("id"), text("logGroup"), text("message"), v[ms].as_i64().expect(ms))
    };
    let mut want: Vec<(String, String, String, i64)> = put
        .iter()
        .filter(|l| l["op"] == "put-cwl" && l["message"].as_str().is_some_and(|m| m.contains("is_save_kinesis")))
        .map(|l| event(l, "timestamp"))
        .collect();
    want.sort();
    let rows = duckdb(
        &python,
        &format!(
            "select id, logGroup, message, epoch_ms(timestamp) as ms, device, value from read_parquet('{}/out/**/*.parquet', hive_partitioning = false) order by id",
            d.display()
        ),
    );
    let mut got: Vec<(String, String, String, i64)> =
        rows.iter().map(|r| event(&Value::Object(r.clone()), "ms")).collect();
    got.sort();
    // The map parsed each message's JSON into typed columns.
    for r in &rows {
        let doc: Value = serde_json::from_str(r["message"].as_str().expect("message")).expect("JSON message");
        assert_eq!(r["device"], doc["device"], "{r:?}");
        assert_eq!(r["value"].as_f64(), doc["value"].as_f64(), "{r:?}");
    }
    assert!(!want.is_empty());
    assert_eq!(
        got, want,
        "exactly the matching log events, with event time from `timestamp`"
    );
    assert!(
        dead_letters(&d.join("out/_dead_letter")).is_empty(),
        "control messages are not errors"
    );
}

/// Enhanced fan-out (KDS-23..25): the consumer is registered, waited for, and shards are
/// read through subscriptions; same records, same order, same checkpoints as polling.
#[test]
fn kds_23_enhanced_fan_out_reads_every_record_once() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let log = d.join("put.jsonl");
    let ep = &kinesis.endpoint;
    let mut next = Vec::new();
    tool(&python, ep, &["create", "--stream", "s", "--shards", "2"]);
    let f = d.join("a.jsonl");
    lines(&f, 4, 20, &mut next);
    put(&python, ep, &log, &f, Some("3"));
    let p = pipeline(d, ep, "s", "end = \"caught_up\"\nconsumer = { efo = \"sluice-test\" }");
    run_to_tip(&p);
    assert_exactly_once_in_order(&python, d, &log);
    let f = d.join("b.jsonl");
    lines(&f, 4, 20, &mut next);
    put(&python, ep, &log, &f, None);
    run_to_tip(&p);
    assert_exactly_once_in_order(&python, d, &log);
}

/// `sluice validate` on a Kinesis `[source]` (with a one-column schema and a sink): its
/// errors, which must exist.
fn validate_errors(source: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("bad.toml");
    let text = format!(
        "[source]\ntype = \"kinesis\"\nstream = \"s\"\n{source}\n[source.schema]\na = \"string\"\n[sink]\ntype = \"parquet\"\npath = \"out\"\n"
    );
    std::fs::write(&p, text).expect("write");
    let out = run(sluice().arg("validate").arg(&p));
    assert!(!out.status.success(), "{source} validated");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The source's settings and metadata keys are checked with no data, at their lines.
#[test]
fn validate_names_kinesis_settings_errors_at_their_keys() {
    let err = validate_errors("start = \"yesterday\"\nmax_records = 20000");
    assert!(err.contains("bad.toml:4:9: `source.start`"), "{err}");
    assert!(
        err.contains("`source.max_records`: expected an integer from 1 to 10000"),
        "{err}"
    );
    // Metadata is checked against what the kind offers.
    let err = validate_errors("metadata = { topic = \"_t\", sequence = \"_seq\" }");
    assert!(
        err.contains("`source.metadata.topic`: a kinesis source has no `topic` to put in a column: it offers shard, sequence, partition_key, arrival, partition, ingest_time"),
        "{err}"
    );
}

/// The example file pointed at the emulator, read to the stream's tip, output in `out`.
fn example(name: &str, dir: &Path, endpoint: &str, out: &str) -> PathBuf {
    let text = std::fs::read_to_string(crate::support::workspace().join("pipelines").join(name)).expect("example");
    let text = text
        .replace(
            "region = \"us-east-1\"",
            &format!(
                "region = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\nend = \"caught_up\"\nidle_poll = \"200ms\""
            ),
        )
        .replace(&format!("../out/{}", name.trim_end_matches(".toml")), out);
    let path = dir.join(name);
    std::fs::write(&path, text).expect("example");
    path
}

/// Scenario 3's input path: ticks JSON on 4 shards, up to 5 s out of order, through the
/// example window pipeline: every window equals DuckDB's over the input.
#[test]
fn kinesis_ticks_example_windows_equal_duckdb_over_the_input() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let input = d.join("ticks.ndjson");
    let gen_ticks = crate::support::workspace().join("scripts/gen_ticks.py");
    let made = std::process::Command::new(&python)
        .arg(&gen_ticks)
        .arg(&input)
        .args(["--seconds", "600", "--rate", "10", "--seed", "11"])
        .status()
        .expect("gen_ticks");
    assert!(made.success());
    tool(
        &python,
        &kinesis.endpoint,
        &["create", "--stream", "ticks", "--shards", "4"],
    );
    let log = d.join("put.jsonl");
    tool(
        &python,
        &kinesis.endpoint,
        &[
            "--log",
            log.to_str().expect("utf-8"),
            "put",
            "--stream",
            "ticks",
            "--jsonl",
            input.to_str().expect("utf-8"),
            "--key-field",
            "ticker",
        ],
    );
    let p = example("kinesis-ticks.toml", d, &kinesis.endpoint, "out");
    run_to_tip(&p);
    let windows = crate::windows::compare(&python, &d.join("out"), &input);
    assert!(windows > 100, "{windows} windows");
}

/// KDS-01/KDS-03: `start = "latest"` reads nothing put before the first run, then
/// everything after it, including what was put while sluice was down: the checkpoint keeps
/// the time the shard was opened, never LATEST again.
#[test]
fn kds_01_latest_starts_at_the_tip_once_and_a_restart_misses_nothing() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = &kinesis.endpoint;
    let mut next = Vec::new();
    tool(&python, ep, &["create", "--stream", "s", "--shards", "1"]);
    let before = d.join("before.jsonl");
    lines(&before, 3, 5, &mut next);
    put(&python, ep, &d.join("ignored.jsonl"), &before, None);
    std::thread::sleep(Duration::from_millis(1100));
    let p = pipeline(d, ep, "s", "end = \"caught_up\"\nstart = \"latest\"");
    let first = run_to_tip(&p);
    assert!(first.contains("read          0 rows"), "{first}");
    let log = d.join("put.jsonl");
    let after = d.join("after.jsonl");
    lines(&after, 3, 5, &mut next);
    put(&python, ep, &log, &after, Some("4"));
    run_to_tip(&p);
    // Exactly the records put after the first run opened the shard; `seen` counts from the
    // first of them, so compare `n` relative to the first `n` put after.
    let rows = duckdb(
        &python,
        &format!(
            "select device, n, seen from read_parquet('{}/out/**/*.parquet') order by device, n",
            d.display()
        ),
    );
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["device"].as_str().expect("device").to_owned(),
                r["n"].as_i64().expect("n"),
                r["seen"].as_i64().expect("seen"),
            )
        })
        .collect();
    let want: Vec<(String, i64, i64)> = produced(&log)
        .into_iter()
        .map(|(device, n)| (device, n, n - 5))
        .collect();
    assert_eq!(got, want, "the records put after the start, once, in order");
}

/// Scenario 1 through an IoT rule into Kinesis: the example iot-kinesis pipeline over the
/// sample sensor lines put to a stream (bad lines included, keyed by device) writes the same
/// rows and dead-letters the same lines as the file example over the files.
#[test]
fn iot_kinesis_example_writes_what_the_file_example_writes() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = &kinesis.endpoint;
    tool(&python, ep, &["create", "--stream", "iot-sensors", "--shards", "3"]);
    let data = crate::support::workspace().join("pipelines/data");
    for f in ["sensors-1.ndjson", "sensors-2.ndjson"] {
        let path = data.join(f);
        tool(
            &python,
            ep,
            &[
                "put",
                "--stream",
                "iot-sensors",
                "--jsonl",
                path.to_str().expect("utf-8"),
                "--key-field",
                "client_id",
                "--aggregate",
                "10",
            ],
        );
    }
    let p = example("iot-kinesis.toml", d, ep, "kinesis-out");
    run_to_tip(&p);
    let pipelines = crate::support::copy_pipelines(d);
    let file_run = run(sluice().arg("run").arg(pipelines.join("iot-sensors.toml")));
    assert!(file_run.status.success());
    let rows = |glob: &Path| {
        duckdb(
            &python,
            &format!(
                "select device_id, event_time, temperature, humidity, count from read_parquet('{}', hive_partitioning = false) order by all",
                glob.display()
            ),
        )
    };
    let from_stream = rows(&d.join("kinesis-out/ingest_year=*/**/*.parquet"));
    let from_files = rows(&d.join("out/iot-sensors/ingest_year=*/**/*.parquet"));
    assert!(from_files.len() > 1000, "{} rows", from_files.len());
    assert_eq!(
        from_stream, from_files,
        "the same rows from the stream as from the files"
    );
    let dead = |p: &Path| dead_letters(p).len();
    assert_eq!(
        dead(&d.join("kinesis-out/_dead_letter")),
        dead(&d.join("out/iot-sensors/_dead_letter")),
        "the same bad lines"
    );
}
