//! The S3 checkpoint store against moto's S3 server: a pipeline checkpoints to S3 and a second
//! run, from another folder with a fresh copy of the pipeline file and no local checkpoint,
//! resumes from it and reads only the new input; the store keeps the contract and refuses a
//! second writer of one epoch.

use std::path::Path;
use std::process::Command;

use crate::moto::{ENV, Moto};
use crate::support::{duckdb, files_under, python, run, sluice};

const BUCKET: &str = "sluice-test";

fn id_lines(prefix: &str, range: std::ops::Range<u32>) -> String {
    range.map(|i| format!("{{\"id\":\"{prefix}-{i}\"}}\n")).collect()
}

/// Ids in `files` (every Parquet file under `out` when empty), sorted, duplicates kept.
fn ids(py: &Path, out: &Path, files: &[std::path::PathBuf]) -> Vec<String> {
    let from = if files.is_empty() {
        format!("'{}/**/*.parquet'", out.display())
    } else {
        let list: Vec<String> = files.iter().map(|f| format!("'{}'", f.display())).collect();
        format!("[{}]", list.join(", "))
    };
    let rows = duckdb(py, &format!("select id from read_parquet({from}) order by id"));
    rows.iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect()
}

/// A pipeline file in `dir` reading `input` into `out` (absolute paths, so copies in other
/// folders name the same data) and checkpointing to `s3://BUCKET/cp/` on `moto`.
fn pipeline(dir: &Path, input: &Path, out: &Path, moto: &Moto) -> std::path::PathBuf {
    let path = dir.join("p.toml");
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        &path,
        format!(
            "[source]\ntype = \"file\"\npath = \"{}\"\nbatch_rows = 4\n[source.schema]\nid = \"string\"\n\
             [sink]\ntype = \"parquet\"\npath = \"{}\"\n\
             [checkpoint]\nstore = {{ s3 = \"s3://{BUCKET}/cp/\" }}\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\nforce_path_style = true\n",
            input.display(),
            out.display(),
            moto.endpoint
        ),
    )
    .expect("write pipeline");
    path
}

fn run_in(dir: &Path, pipeline: &Path) -> std::process::Output {
    let mut cmd = sluice();
    cmd.current_dir(dir).arg("run").arg(pipeline);
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn a_run_in_another_folder_resumes_from_s3_and_reads_only_new_input() {
    let Some(py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    moto.boto3(&format!("s3.create_bucket(Bucket='{BUCKET}')"));
    let tmp = tempfile::tempdir().expect("tmp");
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("b.ndjson"), id_lines("b", 0..10)).expect("write");

    let first = tmp.path().join("machine-1");
    let p1 = pipeline(&first, &input, &out, &moto);
    assert!(run_in(&first, &p1).status.success());
    let keys = moto.keys(BUCKET, "cp/");
    assert!(!keys.is_empty(), "no checkpoint in S3");
    for k in &keys {
        let epoch = k
            .strip_prefix("cp/checkpoint-")
            .and_then(|k| k.strip_suffix(".json"))
            .unwrap_or_else(|| panic!("unexpected key {k}"));
        assert!(epoch.len() == 20 && epoch.bytes().all(|b| b.is_ascii_digit()), "{k}");
    }
    assert!(keys.len() <= 3, "older epochs are pruned: {keys:?}");
    let before = files_under(&out, ".parquet");
    assert_eq!(ids(&py, &out, &before).len(), 10);

    // More input: lines appended to the file read before, and a new file.
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(input.join("b.ndjson"))
        .expect("open");
    std::io::Write::write_all(&mut more, id_lines("b", 10..15).as_bytes()).expect("append");
    std::fs::write(input.join("a.ndjson"), id_lines("a", 0..3)).expect("write");

    // Another machine: a fresh copy of the pipeline file in another folder, nothing local.
    let second = tmp.path().join("machine-2");
    let p2 = pipeline(&second, &input, &out, &moto);
    assert!(run_in(&second, &p2).status.success());

    let mut want: Vec<String> = (0..15)
        .map(|i| format!("b-{i}"))
        .chain((0..3).map(|i| format!("a-{i}")))
        .collect();
    want.sort();
    assert_eq!(ids(&py, &out, &[]), want, "every line exactly once");
    let new: Vec<_> = files_under(&out, ".parquet")
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    let mut new_lines: Vec<String> = (10..15)
        .map(|i| format!("b-{i}"))
        .chain((0..3).map(|i| format!("a-{i}")))
        .collect();
    new_lines.sort();
    assert_eq!(
        ids(&py, &out, &new),
        new_lines,
        "the second run read only the new lines"
    );
    let latest = moto.keys(BUCKET, "cp/");
    assert!(latest.last() > keys.last(), "a newer epoch: {keys:?} then {latest:?}");
    assert!(
        !out.join("_checkpoints").exists()
            && files_under(tmp.path(), "")
                .iter()
                .all(|f| !f.to_string_lossy().contains("checkpoint")),
        "no checkpoint is kept on the local disk"
    );
}

/// The store itself, in a child test process so the fake credentials are its environment.
#[test]
fn the_s3_store_keeps_the_contract_and_refuses_a_second_writer() {
    let Some(_py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    moto.boto3(&format!("s3.create_bucket(Bucket='{BUCKET}')"));
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        "s3_store::store_contract_child",
        "--include-ignored",
        "--nocapture",
    ])
    .env("SLUICE_TEST_S3_ENDPOINT", &moto.endpoint);
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("child test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
    assert_eq!(
        moto.keys(BUCKET, "lib/"),
        (7..=9)
            .map(|e| format!("lib/checkpoint-{e:020}.json"))
            .collect::<Vec<_>>(),
        "the newest three are kept"
    );
}

#[test]
#[ignore = "run by the_s3_store_keeps_the_contract_and_refuses_a_second_writer"]
fn store_contract_child() {
    use sluice::checkpoint::store::s3::S3Store;
    use sluice::checkpoint::store::{CheckpointStore, StoreError};
    use sluice::config::S3Location;
    let Ok(endpoint) = std::env::var("SLUICE_TEST_S3_ENDPOINT") else {
        return;
    };
    let settings = S3Location {
        bucket: BUCKET.into(),
        prefix: "lib/".into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
        force_path_style: true,
    };
    let mut store = S3Store::new(settings.clone());
    assert_eq!(store.location(), "s3://sluice-test/lib/");
    assert_eq!(store.latest().expect("latest"), None);
    store.put(1, b"one").expect("put");
    store.put(2, b"two").expect("put");
    assert_eq!(store.latest().expect("latest"), Some((2, b"two".to_vec())));
    assert!(
        matches!(store.put(2, b"again"), Err(StoreError::Stale { epoch: 2, latest: 2 })),
        "a stale epoch is refused"
    );
    // Another process sees what this one stored.
    let other = S3Store::new(settings.clone());
    assert_eq!(other.latest().expect("latest"), Some((2, b"two".to_vec())));
    for e in 3..10 {
        store.put(e, format!("{e}").as_bytes()).expect("put");
    }
    assert_eq!(other.latest().expect("latest"), Some((9, b"9".to_vec())));
    // Two writers of one epoch: the conditional write lets only the first win; the same bytes
    // again (a retried request that had landed) are not a conflict.
    let err = other.put_if_absent(9, b"not nine").expect_err("a second writer");
    assert!(matches!(err, StoreError::Conflict { epoch: 9, .. }), "{err}");
    assert!(err.to_string().contains("another writer"), "{err}");
    other.put_if_absent(9, b"9").expect("the same bytes");
    assert_eq!(store.latest().expect("latest"), Some((9, b"9".to_vec())));
    // A missing bucket is an error naming it, not an empty store.
    let missing = S3Store::new(S3Location {
        bucket: "no-such-bucket".into(),
        ..settings
    });
    let err = missing.latest().expect_err("no bucket");
    assert!(err.to_string().contains("s3://no-such-bucket/lib/"), "{err}");
}
