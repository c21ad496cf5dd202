//! Several instances of one pipeline sharing a stream through a KCL lease table
//! (`[source.leases]`): kinesis-local for the stream, moto's DynamoDB for the table, the
//! producer's log and DuckDB over the output as the oracle, boto3 to read the table.
//!
//! The pipeline's counter stage appends `seen`, each device's running count as sluice
//! delivered it; the producer's `n` is the same count at the producer. Devices are partition
//! keys, so a device lives in one shard: `seen == n` on every row proves that the counter's
//! state moved with the shard's lease across takeovers, and that parents were read before
//! children, besides every record being written once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::kinesis::seq_key;
use crate::kinesis_emulator::{Kinesis, json_lines, merge, python, tool};
use crate::kinesis_source::{assert_exactly_once_in_order, aws_env, counted_rows, lines, put};
use crate::moto::Moto;
use crate::support::{duckdb, files_under, poll_while_running, sluice};

const TABLE: &str = "sluice-leases";

/// The counter pipeline reading stream `s` with leases in moto's DynamoDB.
fn pipeline(dir: &Path, kinesis: &str, moto: &str) -> PathBuf {
    let counter = Path::new(env!("SLUICE_PLUGIN_DIR")).join("sluice_test_counter.wasm");
    let text = format!(
        r#"
[source]
type = "kinesis"
stream = "s"
region = "us-east-1"
endpoint_url = "{kinesis}"
idle_poll = "200ms"
[source.leases]
table = "{TABLE}"
failover = "3s"
cleanup_after = "1s"
endpoint_url = "{moto}"
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
[dead_letter]
path = "dead"
[checkpoint]
path = "cp"
interval = "300ms"
"#,
        counter = counter.display()
    );
    let path = dir.join("leased.toml");
    std::fs::write(&path, text).expect("pipeline");
    path
}

/// A running instance, killed when dropped (a failing test leaves none behind).
struct Instance(Child);

impl std::ops::Deref for Instance {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Instance {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start an instance; its log goes to `dir/<name>.log`.
fn spawn(pipeline: &Path, dir: &Path, name: &str) -> Instance {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
    let child = aws_env(&mut sluice())
        .env("RUST_LOG", "info")
        .arg("run")
        .arg("--no-reload")
        .arg(pipeline)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn sluice");
    Instance(child)
}

fn terminate(child: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "an instance stopped by SIGTERM failed: {status}");
}

/// The lease table as boto3 reads it: each item's attributes with their DynamoDB types (none
/// before an instance has created the table).
fn table(moto: &Moto) -> Vec<Value> {
    let out = moto.dynamodb(&format!(
        "items = []\n\
         try:\n\
         \x20   for page in ddb.get_paginator('scan').paginate(TableName='{TABLE}', ConsistentRead=True):\n\
         \x20       items.extend(page['Items'])\n\
         except ddb.exceptions.ResourceNotFoundException:\n\
         \x20   pass\n\
         for i in items:\n\
         \x20   i.pop('sluiceCheckpoint', None)\n\
         print(json.dumps(sorted(items, key=lambda i: i['leaseKey']['S'])))"
    ));
    serde_json::from_str(out.trim()).expect("items")
}

/// How many live (not ended) leases each owner holds.
fn owners(moto: &Moto) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for item in table(moto) {
        if item["checkpoint"]["S"] == "SHARD_END" {
            continue;
        }
        let owner = item["leaseOwner"]["S"].as_str().unwrap_or("(nobody)").to_owned();
        *by.entry(owner).or_default() += 1;
    }
    by
}

/// Rows in the published Parquet files.
fn written(python: &Path, dir: &Path) -> usize {
    if files_under(&dir.join("out"), ".parquet").is_empty() {
        return 0;
    }
    let rows = duckdb(
        python,
        &format!(
            "select count(*) as n from read_parquet('{}/out/**/*.parquet')",
            dir.display()
        ),
    );
    rows[0]["n"].as_u64().expect("count") as usize
}

fn put_round(python: &Path, ep: &str, dir: &Path, round: usize, per_device: usize, next: &mut Vec<u64>) {
    let f = dir.join(format!("r{round}.jsonl"));
    lines(&f, 16, per_device, next);
    put(python, ep, &dir.join("put.jsonl"), &f, None);
}

/// Two instances split an 8-shard stream 4/4; one is SIGKILLed mid-stream and the other takes
/// its shards after the failover time and finishes: every record once, each device's count
/// carried across the takeover in the lease. The table holds KCL's attribute names and types.
#[test]
fn two_instances_share_eight_shards_and_a_sigkilled_ones_shards_move_exactly_once() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = &kinesis.endpoint;
    let mut next = Vec::new();
    tool(&python, ep, &["create", "--stream", "s", "--shards", "8"]);
    put_round(&python, ep, d, 0, 30, &mut next);
    let p = pipeline(d, ep, &moto.endpoint);
    let mut a = spawn(&p, d, "a");
    let mut b = spawn(&p, d, "b");

    // Both take leases until each holds four.
    let split = poll_while_running(&mut a, "a 4/4 split of the leases", Duration::from_millis(500), || {
        let by = owners(&moto);
        let counts: Vec<usize> = by.values().copied().collect();
        if by.len() == 2 && counts == [4, 4] {
            Ok(by)
        } else {
            Err(format!("{by:?}"))
        }
    });
    assert!(b.try_wait().expect("b").is_none(), "b exited early");
    let b_id = format!("-{}", b.id());
    assert!(
        split.keys().any(|w| w.ends_with(&b_id)),
        "default worker ids end in the pid: {split:?}"
    );

    // More records while both run; b dies once some of them are out, with rows in flight.
    put_round(&python, ep, d, 1, 30, &mut next);
    let backlog = 16 * 30;
    poll_while_running(&mut a, "rows of the second round", Duration::from_millis(200), || {
        let n = written(&python, d);
        if n > backlog { Ok(()) } else { Err(format!("{n} rows")) }
    });
    b.kill().expect("SIGKILL b");
    b.wait().ok();
    put_round(&python, ep, d, 2, 30, &mut next);

    // a takes b's four shards once their counters stood still for the failover time.
    let total = put_records(d).len();
    poll_while_running(&mut a, "every record written", Duration::from_millis(500), || {
        let n = written(&python, d);
        if n >= total {
            Ok(())
        } else {
            Err(format!("{n} of {total} rows; leases {:?}", owners(&moto)))
        }
    });
    let by = owners(&moto);
    assert_eq!(
        by.values().copied().collect::<Vec<_>>(),
        [8],
        "a holds every lease: {by:?}"
    );
    terminate(&mut a);
    assert_exactly_once_in_order(&python, d, &d.join("put.jsonl"));

    // KCL's attribute names and types, read back with boto3; a stopped instance gave its
    // leases up (no owner), so another takes them at once.
    let items = table(&moto);
    assert_eq!(items.len(), 8, "{items:?}");
    for item in &items {
        for (name, ty) in [
            ("leaseKey", "S"),
            ("leaseCounter", "N"),
            ("checkpoint", "S"),
            ("checkpointSubSequenceNumber", "N"),
            ("ownerSwitchesSinceCheckpoint", "N"),
        ] {
            assert!(item[name][ty].is_string(), "{name} is not {ty}: {item}");
        }
        assert!(item.get("leaseOwner").is_none(), "released on SIGTERM: {item}");
        let checkpoint = item["checkpoint"]["S"].as_str().expect("checkpoint");
        assert!(
            checkpoint.len() > 20 && checkpoint.bytes().all(|c| c.is_ascii_digit()),
            "a shard's checkpoint is its last sequence number: {item}"
        );
    }
    // The checkpoint is the last record of the shard the producer put.
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for l in json_lines(&std::fs::read_to_string(d.join("put.jsonl")).expect("log")) {
        if l["op"] == "put" {
            let (shard, seq) = (
                l["shard"].as_str().expect("shard"),
                l["sequence"].as_str().expect("seq"),
            );
            let e = last.entry(shard.to_owned()).or_default();
            if (seq.len(), seq) > (e.len(), e.as_str()) {
                *e = seq.to_owned();
            }
        }
    }
    for item in &items {
        let shard = item["leaseKey"]["S"].as_str().expect("key");
        assert_eq!(
            item["checkpoint"]["S"].as_str(),
            last.get(shard).map(String::as_str),
            "{shard}"
        );
    }
    let moved = items
        .iter()
        .filter(|i| i["ownerSwitchesSinceCheckpoint"]["N"] != "0")
        .count();
    assert_eq!(moved, 0, "a checkpoint resets the owner switches");
}

/// The producer's records: (device, n, shard, sequence).
fn put_records(dir: &Path) -> Vec<(String, i64, String, String)> {
    json_lines(&std::fs::read_to_string(dir.join("put.jsonl")).expect("log"))
        .iter()
        .filter(|l| l["op"] == "put")
        .map(|l| {
            let row: Value = serde_json::from_str(l["data"].as_str().expect("data")).expect("json");
            (
                row["device"].as_str().expect("device").to_owned(),
                row["n"].as_i64().expect("n"),
                l["shard"].as_str().expect("shard").to_owned(),
                l["sequence"].as_str().expect("sequence").to_owned(),
            )
        })
        .collect()
}

/// A lease table pre-filled as KCL writes it — a worker that stopped renewing, each shard
/// checkpointed at its fifth record — is taken over from those checkpoints; a second and a
/// third instance then steal one lease at a time toward 4/4 and 3/3/2. Every record after
/// the checkpoints is written once; each device's count goes on across every move.
#[test]
fn a_kcl_table_is_taken_over_and_a_third_instance_steals_toward_three_three_two() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = &kinesis.endpoint;
    let mut next = Vec::new();
    tool(&python, ep, &["create", "--stream", "s", "--shards", "8"]);
    put_round(&python, ep, d, 0, 10, &mut next);

    // KCL's table: its attribute names and types, an owner whose counter never moves again.
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, _, shard, seq) in put_records(d) {
        by_shard.entry(shard).or_default().push(seq);
    }
    assert_eq!(by_shard.len(), 8, "16 devices reach every shard");
    let mut checkpoints = BTreeMap::new();
    for (shard, seqs) in &mut by_shard {
        seqs.sort_by(|a, b| seq_key(a).cmp(&seq_key(b)));
        checkpoints.insert(shard.clone(), seqs[seqs.len().min(5) - 1].clone());
    }
    let items: Vec<String> = checkpoints
        .iter()
        .map(|(shard, seq)| {
            format!(
                "{{'leaseKey': {{'S': '{shard}'}}, 'leaseOwner': {{'S': 'kcl-worker-1'}}, \
                 'leaseCounter': {{'N': '17'}}, 'checkpoint': {{'S': '{seq}'}}, \
                 'checkpointSubSequenceNumber': {{'N': '0'}}, 'ownerSwitchesSinceCheckpoint': {{'N': '0'}}}}"
            )
        })
        .collect();
    moto.dynamodb(&format!(
        "ddb.create_table(TableName='{TABLE}', BillingMode='PAY_PER_REQUEST',\n\
         \x20   KeySchema=[{{'AttributeName': 'leaseKey', 'KeyType': 'HASH'}}],\n\
         \x20   AttributeDefinitions=[{{'AttributeName': 'leaseKey', 'AttributeType': 'S'}}])\n\
         for item in [{}]:\n\
         \x20   ddb.put_item(TableName='{TABLE}', Item=item)",
        items.join(", ")
    ));

    let p = pipeline(d, ep, &moto.endpoint);
    let mut a = spawn(&p, d, "a");
    let counts = |moto: &Moto| {
        let mut c: Vec<usize> = owners(moto).into_values().collect();
        c.sort_unstable();
        c
    };
    poll_while_running(&mut a, "a holding every lease", Duration::from_millis(500), || {
        let by = owners(&moto);
        if by.len() == 1 && !by.contains_key("kcl-worker-1") {
            Ok(())
        } else {
            Err(format!("{by:?}"))
        }
    });
    let mut b = spawn(&p, d, "b");
    put_round(&python, ep, d, 1, 10, &mut next);
    poll_while_running(&mut b, "a 4/4 split", Duration::from_millis(500), || {
        let c = counts(&moto);
        if c == [4, 4] {
            Ok(())
        } else {
            Err(format!("{:?}", owners(&moto)))
        }
    });
    let mut c = spawn(&p, d, "c");
    put_round(&python, ep, d, 2, 10, &mut next);
    poll_while_running(&mut c, "a 3/3/2 split", Duration::from_millis(500), || {
        let n = counts(&moto);
        if n == [2, 3, 3] {
            Ok(())
        } else {
            Err(format!("{:?}", owners(&moto)))
        }
    });
    put_round(&python, ep, d, 3, 10, &mut next);

    // What KCL had not checkpointed, and how many records of each device it had.
    let records = put_records(d);
    let mut skipped: BTreeMap<String, i64> = BTreeMap::new();
    let mut want = Vec::new();
    for (device, n, shard, seq) in &records {
        if seq_key(seq) <= seq_key(&checkpoints[shard]) {
            *skipped.entry(device.clone()).or_default() += 1;
        } else {
            want.push((device.clone(), *n));
        }
    }
    want.sort();
    poll_while_running(
        &mut a,
        "every record after the checkpoints",
        Duration::from_millis(500),
        || {
            let n = written(&python, d);
            if n >= want.len() {
                Ok(())
            } else {
                Err(format!("{n} of {} rows; leases {:?}", want.len(), owners(&moto)))
            }
        },
    );
    assert_eq!(counts(&moto), [2, 3, 3], "the split holds: {:?}", owners(&moto));
    for child in [&mut a, &mut b, &mut c] {
        terminate(child);
    }
    let (rows, got) = counted_rows(&python, d);
    assert_eq!(got.len(), want.len(), "rows written vs records after KCL's checkpoints");
    assert_eq!(got, want, "every record after the checkpoints, once");
    let wrong: Vec<_> = rows
        .iter()
        .filter(|r| {
            let device = r["device"].as_str().expect("device");
            r["seen"].as_i64() != Some(r["n"].as_i64().expect("n") - skipped.get(device).copied().unwrap_or(0))
        })
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "a device's count did not go on across a move: {wrong:?}"
    );
}

/// Two shards split and two merge while two instances read the stream: each child is read
/// only after its parents' end, by whichever instance takes it, starting from their state (a
/// split child with its keys' counts, the merged child with both parents'): every record once
/// and every device's count unbroken (parents before children across instances). Then the
/// parents' leases are cleaned up, and not made again by a new instance's shard sync.
#[test]
fn shards_split_and_merge_while_two_instances_read_parents_before_children_with_their_state() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = &kinesis.endpoint;
    let mut next = Vec::new();
    tool(&python, ep, &["create", "--stream", "s", "--shards", "4"]);
    put_round(&python, ep, d, 0, 20, &mut next);
    let p = pipeline(d, ep, &moto.endpoint);
    let mut a = spawn(&p, d, "a");
    let mut b = spawn(&p, d, "b");
    poll_while_running(&mut a, "a 2/2 split", Duration::from_millis(500), || {
        let c: Vec<usize> = owners(&moto).into_values().collect();
        if c == [2, 2] {
            Ok(())
        } else {
            Err(format!("{:?}", owners(&moto)))
        }
    });
    put_round(&python, ep, d, 1, 20, &mut next);
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        tool(&python, ep, &["split", "--stream", "s", "--shard", shard]);
    }
    merge(&python, ep, "s", "shardId-000000000002", "shardId-000000000003");
    put_round(&python, ep, d, 2, 20, &mut next);
    let total = put_records(d).len();
    poll_while_running(&mut a, "every record written", Duration::from_millis(500), || {
        let n = written(&python, d);
        if n >= total {
            Ok(())
        } else {
            Err(format!("{n} of {total} rows; leases {:?}", owners(&moto)))
        }
    });
    assert!(b.try_wait().expect("b").is_none(), "b exited early");
    // Five live leases (four children of the splits, one of the merge) over two instances.
    let c: Vec<usize> = owners(&moto).into_values().collect();
    assert_eq!(c.iter().sum::<usize>(), 5, "{:?}", owners(&moto));
    // Once every child has started from them, the parents' leases are deleted (KCL's lease
    // cleanup; a delete is conditional on SHARD_END).
    let keys = |moto: &Moto| -> Vec<String> {
        table(moto)
            .iter()
            .map(|i| i["leaseKey"]["S"].as_str().expect("key").to_owned())
            .collect()
    };
    let parents = [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
        "shardId-000000000003",
    ];
    poll_while_running(
        &mut a,
        "the parents' leases cleaned up",
        Duration::from_millis(500),
        || {
            let k = keys(&moto);
            if parents.iter().any(|p| k.iter().any(|x| x == p)) {
                Err(format!("{k:?}"))
            } else {
                Ok(())
            }
        },
    );
    terminate(&mut a);
    terminate(&mut b);
    assert_exactly_once_in_order(&python, d, &d.join("put.jsonl"));
    // A new instance lists the shards at its start: the closed parents, still listed, get
    // no lease again, and it takes the five children the others gave up.
    let mut c = spawn(&p, d, "c");
    poll_while_running(
        &mut c,
        "c holding the five children",
        Duration::from_millis(500),
        || {
            let by = owners(&moto);
            if by.len() == 1 && by.values().sum::<usize>() == 5 && !by.contains_key("(nobody)") {
                Ok(())
            } else {
                Err(format!("{by:?}"))
            }
        },
    );
    terminate(&mut c);
    let k = keys(&moto);
    assert!(
        parents.iter().all(|p| !k.iter().any(|x| x == p)),
        "a cleaned-up parent was leased again: {k:?}"
    );
    assert_eq!(k.len(), 5, "{k:?}");
    let children: Vec<Value> = table(&moto)
        .into_iter()
        .filter(|i| i.get("parentShardId").is_some())
        .collect();
    assert_eq!(
        children.len(),
        5,
        "each split made two children, the merge one, with their parents: {children:?}"
    );
    let merged = children
        .iter()
        .find(|c| c["parentShardId"]["SS"].as_array().is_some_and(|p| p.len() == 2));
    assert!(merged.is_some(), "the merged shard names both parents: {children:?}");
    assert!(children.iter().all(|c| c["parentShardId"]["SS"].is_array()));
}

/// Scenario 3 on two instances: ticks keyed by ticker, the 1-minute window per ticker. One
/// instance is SIGKILLed halfway; the other takes its shards with their open windows; then
/// one shard splits and two merge, with windows open. Every window written equals DuckDB's
/// `time_bucket` over the input, none twice, and every window the watermark has closed is
/// there.
#[test]
fn scenario_3_windows_per_ticker_equal_duckdb_across_a_takeover_a_split_and_a_merge() {
    let Some(python) = python() else { return };
    let Some(kinesis) = Kinesis::start() else { return };
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let input = d.join("ticks.ndjson");
    let made = Command::new(&python)
        .arg(crate::support::workspace().join("scripts/gen_ticks.py"))
        .arg(&input)
        .args(["--seconds", "600", "--rate", "10", "--seed", "17"])
        .status()
        .expect("gen_ticks");
    assert!(made.success());
    let text = std::fs::read_to_string(&input).expect("ticks");
    let all: Vec<&str> = text.lines().collect();
    let (first, second) = all.split_at(all.len() / 2);
    let ep = &kinesis.endpoint;
    tool(&python, ep, &["create", "--stream", "ticks", "--shards", "4"]);
    let log = d.join("put.jsonl");
    let put_half = |name: &str, lines: &[&str]| {
        let f = d.join(name);
        std::fs::write(&f, lines.join("\n") + "\n").expect("half");
        let args = [
            "--log",
            log.to_str().expect("utf-8"),
            "put",
            "--stream",
            "ticks",
            "--jsonl",
        ];
        let mut args: Vec<&str> = args.to_vec();
        let f = f.to_str().expect("utf-8").to_owned();
        args.extend([f.as_str(), "--key-field", "ticker"]);
        tool(&python, ep, &args);
    };
    put_half("first.ndjson", first);
    let example =
        std::fs::read_to_string(crate::support::workspace().join("pipelines/kinesis-ticks.toml")).expect("example");
    let example = example
        .replace(
            "region = \"us-east-1\"",
            &format!("region = \"us-east-1\"\nendpoint_url = \"{ep}\"\nidle_poll = \"200ms\""),
        )
        .replace("../out/kinesis-ticks", "out")
        .replace(
            "[source.schema]",
            &format!(
                "[source.leases]\ntable = \"{TABLE}\"\nfailover = \"3s\"\nendpoint_url = \"{}\"\n\n[source.schema]",
                moto.endpoint
            ),
        )
        + "\n[checkpoint]\npath = \"cp\"\ninterval = \"300ms\"\n";
    let p = d.join("ticks.toml");
    std::fs::write(&p, example).expect("pipeline");
    let mut a = spawn(&p, d, "a");
    let mut b = spawn(&p, d, "b");
    poll_while_running(
        &mut a,
        "both instances holding leases",
        Duration::from_millis(500),
        || {
            let by = owners(&moto);
            if by.len() == 2 && !by.contains_key("(nobody)") {
                Ok(())
            } else {
                Err(format!("{by:?}"))
            }
        },
    );
    // b dies with windows open and output not yet committed.
    poll_while_running(&mut b, "windows written", Duration::from_millis(200), || {
        let n = files_under(&d.join("out"), ".parquet").len();
        if n > 0 { Ok(()) } else { Err("no window yet".into()) }
    });
    b.kill().expect("SIGKILL b");
    b.wait().ok();
    // Reshard before the second half: a split (each child keeps the open windows of the
    // tickers that hash into it) and a merge (the child holds both parents' windows). By
    // MD5, shard 0 holds AMZN, 1 TBV, 2 AAPL and MSFT (which its split parts), 3 INTC.
    tool(
        &python,
        ep,
        &["split", "--stream", "ticks", "--shard", "shardId-000000000002"],
    );
    merge(&python, ep, "ticks", "shardId-000000000000", "shardId-000000000001");
    put_half("second.ndjson", second);

    // Windows the watermark closes: all but the input's last few seconds of each shard.
    let want = duckdb(
        &python,
        &crate::windows::EXPECTED.replace("{input}", &input.display().to_string()),
    );
    let last = want
        .iter()
        .filter_map(|r| r["w"].as_str())
        .max()
        .expect("windows")
        .to_owned();
    let closed = want.iter().filter(|r| r["w"].as_str() < Some(last.as_str())).count();
    let read_windows = || {
        if files_under(&d.join("out"), ".parquet").is_empty() {
            return Vec::new();
        }
        duckdb(
            &python,
            &crate::windows::WINDOWS.replace("{out}", &d.join("out").display().to_string()),
        )
    };
    poll_while_running(&mut a, "every closed window", Duration::from_millis(500), || {
        let n = read_windows().len();
        if n >= closed {
            Ok(())
        } else {
            Err(format!("{n} of {closed} windows; leases {:?}", owners(&moto)))
        }
    });
    terminate(&mut a);
    let got = read_windows();
    let want_by: BTreeMap<(String, String), &serde_json::Map<String, Value>> = want
        .iter()
        .map(|r| {
            (
                (
                    r["ticker"].as_str().expect("t").to_owned(),
                    r["w"].as_str().expect("w").to_owned(),
                ),
                r,
            )
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for g in &got {
        let key = (
            g["ticker"].as_str().expect("t").to_owned(),
            g["w"].as_str().expect("w").to_owned(),
        );
        assert!(seen.insert(key.clone()), "window {key:?} written twice");
        let w = want_by
            .get(&key)
            .unwrap_or_else(|| panic!("window {key:?} is not in the input"));
        assert_eq!(g["ticks"], w["ticks"], "{key:?}");
        let (x, y) = (
            g["avg_price"].as_f64().expect("avg"),
            w["avg_price"].as_f64().expect("avg"),
        );
        assert!((x - y).abs() <= 1e-9 * y.abs(), "{g:?} vs {w:?}");
    }
    let missing: Vec<_> = want_by
        .keys()
        .filter(|k| k.1 < last && !seen.contains(*k))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "closed windows missing: {missing:?}");
}
