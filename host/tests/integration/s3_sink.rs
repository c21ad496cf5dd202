//! S3 sinks against moto's S3 server, read back with boto3 (downloaded whole) and checked by
//! value with DuckDB, pyarrow and Python's gzip: scenario 4 on S3, SIGKILLs with S3 sinks and
//! the S3 checkpoint store, a restart from an empty folder, and S3 faults injected by a proxy.
//! After every recovery no multipart upload and no temporary object is left in the bucket.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::crash::{
    Output, Timing, assert_same_output, kill_repeatedly, killed, pipeline_to, run_to_end, spawn, wait, write_rows,
};
use crate::moto::{ENV, Moto};
use crate::sinks::check_scenario_4;
use crate::support::{Proxy, copy_pipelines, python, run, sluice};

const BUCKET: &str = "sluice-sink";

/// Keys with a hidden part (`.name.inprogress…`): temporaries that should be gone.
fn hidden(objects: &[(String, String, u64)]) -> Vec<&str> {
    objects
        .iter()
        .map(|(k, _, _)| k.as_str())
        .filter(|k| k.split('/').any(|part| part.starts_with('.')))
        .collect()
}

/// The objects outside checkpoint folders, as (key, ETag): what a rerun must not change.
fn output_objects(objects: &[(String, String, u64)]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|(k, _, _)| !k.contains("_checkpoints/") && !k.contains("_sluice/"))
        .map(|(k, e, _)| (k.clone(), e.clone()))
        .collect()
}

/// Point every `bucket = …` and the `[checkpoint]` of a pipeline file at `endpoint`.
fn at_endpoint(text: &str, endpoint: &str) -> String {
    let at = format!("endpoint_url = \"{endpoint}\"\nforce_path_style = true\n");
    text.lines()
        .map(|l| {
            if l.starts_with("bucket = ") || l == "[checkpoint]" {
                format!("{l}\n{at}")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn scenario_4_on_s3_archives_and_enriches_exactly_the_input() {
    let Some(py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    moto.bucket("datalake");
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    let file = pipelines.join("raw-and-enriched-s3.toml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, at_endpoint(&text, &moto.endpoint)).expect("write");
    let run_it = || {
        let out = run(sluice().arg("run").arg(&file).envs(ENV.iter().copied()));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run_it();

    let mirror = tmp.path().join("mirror");
    let objects = moto.download("datalake", "", &mirror);
    check_scenario_4(
        &py,
        &pipelines,
        &mirror.join("rawdata"),
        &mirror.join("sensors"),
        &mirror.join("errors"),
    );
    // Glue's names for the ingest-time folders, and one checkpoint folder.
    let glue = |k: &str| {
        let parts: Vec<&str> = k.split('/').collect();
        parts.len() == 6
            && ["ingest_year=", "ingest_month=", "ingest_day=", "ingest_hour="]
                .iter()
                .zip(&parts[1..5])
                .all(|(name, p)| {
                    p.strip_prefix(name)
                        .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
                })
            && parts[5].ends_with(".parquet")
    };
    let enriched: Vec<&String> = objects
        .iter()
        .map(|(k, _, _)| k)
        .filter(|k| k.starts_with("sensors/"))
        .collect();
    assert!(!enriched.is_empty() && enriched.iter().all(|k| glue(k)), "{enriched:?}");
    assert!(
        objects
            .iter()
            .any(|(k, _, _)| k.starts_with("_sluice/raw-and-enriched/checkpoint-")),
        "no checkpoint in the bucket"
    );
    assert!(hidden(&objects).is_empty(), "temporaries left: {:?}", hidden(&objects));
    assert!(moto.uploads("datalake").is_empty(), "multipart uploads left");

    // With nothing new to read, a second run changes no object.
    run_it();
    let again = moto.download("datalake", "", &tmp.path().join("mirror-2"));
    assert_eq!(output_objects(&again), output_objects(&objects));
}

/// Input, a clean local run of the crash pipeline as the reference, and how long an S3 run
/// takes to start and per file (for the kill times).
struct Setup {
    tmp: tempfile::TempDir,
    input: std::path::PathBuf,
    clean: std::path::PathBuf,
    startup: Duration,
    per_file: Duration,
    files: usize,
}

/// `rows` in `files` files; `timed`: measure an S3 run's start-up and time per file (for kill
/// times).
fn setup(moto: &Moto, files: usize, rows: usize, timed: bool) -> Setup {
    moto.bucket(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).expect("mkdir");
    write_rows(&input, files, rows);
    let clean = tmp.path().join("clean");
    run_to_end(&pipeline_to(&clean, &input, &Output::Local));
    let (mut startup, mut per_file) = (Duration::ZERO, Duration::ZERO);
    if timed {
        let s3 = Output::S3 {
            endpoint: &moto.endpoint,
            bucket: BUCKET,
            prefix: "timing/",
        };
        let pipeline = pipeline_to(&tmp.path().join("timing"), &input, &s3);
        let full = run_to_end(&pipeline);
        startup = run_to_end(&pipeline);
        per_file = full.saturating_sub(startup).max(Duration::from_millis(20)) / files as u32;
    }
    Setup {
        tmp,
        input,
        clean,
        startup,
        per_file,
        files,
    }
}

/// Download `prefix` into `<tmp>/<name>` (beside the input, as the checks expect) and check
/// it against the clean run: same rows, dead letters and archive; nothing temporary left.
fn check_against_clean(py: &Path, moto: &Moto, s: &Setup, prefix: &str, name: &str) -> Vec<(String, String, u64)> {
    let mirror = s.tmp.path().join(name);
    let objects = moto.download(BUCKET, prefix, &mirror);
    assert_same_output(py, &s.clean, &mirror);
    assert!(hidden(&objects).is_empty(), "temporaries left: {:?}", hidden(&objects));
    let uploads = moto.uploads(BUCKET);
    assert!(uploads.is_empty(), "multipart uploads left: {uploads:?}");
    objects
}

#[test]
fn kill_9_with_s3_sinks_and_an_s3_store_loses_and_duplicates_nothing() {
    let Some(py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    let kills = std::env::var("SLUICE_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // Fewer rows than the local crash test (moto answers a request in milliseconds, and these
    // pipelines make several per file and checkpoint), but enough per file that a run
    // checkpoints files while they are open.
    let s = setup(&moto, 2 * kills + 8, 150_000, true);
    let arriving = s.tmp.path().join("arriving");
    let crashy = pipeline_to(
        &s.tmp.path().join("crashy"),
        &arriving,
        &Output::S3 {
            endpoint: &moto.endpoint,
            bucket: BUCKET,
            prefix: "crashy/",
        },
    );
    let timing = Timing {
        startup: s.startup,
        per_file: s.per_file,
        seed: std::env::var("SLUICE_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x53_5eed),
        kills,
        // Checkpoints are on S3 here.
        checkpoints: None,
    };
    kill_repeatedly(
        &crashy,
        &s.input,
        &arriving,
        &[
            "checkpoint-committed",
            "row-group-flushed",
            "output-renamed",
            "upload-sealed",
        ],
        &timing,
    );
    run_to_end(&crashy);
    let objects = check_against_clean(&py, &moto, &s, "crashy/", "mirror");
    // With nothing new to read, a rerun changes no object.
    run_to_end(&crashy);
    let again = moto.download(BUCKET, "crashy/", &s.tmp.path().join("mirror-again"));
    assert_eq!(output_objects(&again), output_objects(&objects));
    eprintln!("{} files of input, {} objects", s.files, objects.len());
}

/// Under each prefix, an upload in progress with one part and a tail object of a file no
/// checkpoint lists (and whose name no run writes), as a run killed while sealing leaves them.
fn plant_leftovers(moto: &Moto, prefixes: &[&str]) {
    let before = moto.uploads(BUCKET).len();
    for prefix in prefixes {
        let name = "zz-999999999999-0000.jsonl";
        moto.boto3(&format!(
            "u = s3.create_multipart_upload(Bucket='{BUCKET}', Key='{prefix}{name}')\n\
             s3.upload_part(Bucket='{BUCKET}', Key='{prefix}{name}', UploadId=u['UploadId'], PartNumber=1, Body=b'x' * 10)\n\
             s3.put_object(Bucket='{BUCKET}', Key='{prefix}.{name}.inprogress.tail-{0:020}-{0:020}', Body=b'y')",
            0
        ));
    }
    assert_eq!(moto.uploads(BUCKET).len(), before + prefixes.len());
}

#[test]
fn a_pipeline_on_s3_continues_exactly_once_from_an_empty_folder_elsewhere() {
    let Some(py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    let s = setup(&moto, 12, 60_000, false);
    let output = Output::S3 {
        endpoint: &moto.endpoint,
        bucket: BUCKET,
        prefix: "moved/",
    };
    // Machine 1: killed once it has stored a checkpoint of its own, then its folder is gone.
    let first = s.tmp.path().join("machine-1");
    let pipeline = pipeline_to(&first, &s.input, &output);
    let mut child = spawn(&pipeline, None);
    let started = Instant::now();
    while moto.keys(BUCKET, "moved/out/_checkpoints/").is_empty() && child.try_wait().expect("try_wait").is_none() {
        assert!(started.elapsed() < Duration::from_secs(600), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let status = wait(&mut child);
    assert!(
        killed(status),
        "the first run finished before it could be killed: {status}"
    );
    std::fs::remove_dir_all(&first).expect("rm");
    // What a run killed while sealing leaves, in each place, the dead letters nested inside
    // the Parquet sink's prefix among them: recovery must clear all of it.
    plant_leftovers(&moto, &["moved/out/", "moved/raw/", "moved/out/_dead_letter/"]);
    // Machine 2: a fresh folder with only the pipeline file.
    let second = pipeline_to(&s.tmp.path().join("machine-2"), &s.input, &output);
    let out = run(sluice().arg("run").arg(&second).envs(ENV.iter().copied()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("resumed       from checkpoint"), "{stdout}");
    check_against_clean(&py, &moto, &s, "moved/", "mirror");
}

#[test]
fn s3_faults_injected_by_a_proxy_change_nothing_in_the_output() {
    let Some(py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    let s = setup(&moto, 8, 60_000, false);
    let proxy = Proxy::start(
        &py,
        "s3_fault_proxy.py",
        &moto.endpoint,
        &["--rate", "0.08", "--seed", "11"],
    );
    let faulty = pipeline_to(
        &s.tmp.path().join("faulty"),
        &s.input,
        &Output::S3 {
            endpoint: &proxy.endpoint,
            bucket: BUCKET,
            prefix: "faulty/",
        },
    );
    run_to_end(&faulty);
    let stats = proxy.stats();
    eprintln!("proxy: {stats}");
    for kind in ["slowdown", "internal", "reset", "cut", "lost", "slow"] {
        assert!(
            stats["faults"][kind].as_u64().unwrap_or(0) > 0,
            "no `{kind}` fault was injected: {stats}"
        );
    }
    let parts: u64 = stats["by_operation"]
        .as_object()
        .expect("operations")
        .iter()
        .filter(|(op, _)| op.starts_with("PUT ?partNumber"))
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    assert!(parts > 0, "no part went through the proxy: {stats}");
    check_against_clean(&py, &moto, &s, "faulty/", "mirror");
}

/// Lines of about 270 bytes that compress to about half (random hex): `{"id":…,"pad":"…"}`.
fn padded_lines(rng: &mut crate::crash::Rng, from: usize, n: usize) -> String {
    let mut text = String::with_capacity(n * 280);
    for i in from..from + n {
        let pad: String = (0..32).map(|_| format!("{:08x}", rng.below(1 << 32))).collect();
        text.push_str(&format!("{{\"id\":{i},\"pad\":\"{pad}\"}}\n"));
    }
    text
}

#[test]
fn files_larger_than_a_part_are_uploaded_in_parts_and_survive_kills() {
    let Some(py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    moto.bucket(BUCKET);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).expect("mkdir");
    let mut rng = crate::crash::Rng(0xb16);
    let (files, per_file) = (6, 40_000);
    for f in 0..files {
        let text = padded_lines(&mut rng, f * per_file, per_file);
        std::fs::write(input.join(format!("in-{f:04}.ndjson")), text).expect("write");
    }
    // Parts of 5 MiB, files that never roll: each output is one object of several parts, open
    // across many checkpoints, so kills land with parts, tails and journals in every state.
    let at = format!(
        "endpoint_url = \"{}\"\nforce_path_style = true\nregion = \"us-east-1\"",
        moto.endpoint
    );
    let text = format!(
        r#"
[source]
type = "file"
path = "{input}"
batch_rows = 2000
max_open_files = 1
[source.schema]
id = "int64"
pad = "string"
[[sink]]
name = "rows"
type = "s3"
bucket = "{BUCKET}"
prefix = "big/rows/"
{at}
compression = "none"
row_group_rows = 4096
part_mb = 5
max_file_age = "1h"
[[sink]]
name = "archive"
type = "s3"
format = "raw"
input = "source"
bucket = "{BUCKET}"
prefix = "big/raw/"
{at}
part_mb = 5
max_file_age = "1h"
partition = {{ by = "none" }}
[checkpoint]
store = {{ s3 = "s3://{BUCKET}/big/_checkpoints/" }}
{at}
interval = "300ms"
"#,
        input = input.join("in-*.ndjson").display()
    );
    let pipeline = tmp.path().join("big.toml");
    std::fs::write(&pipeline, text).expect("write");
    // Kill it a few times once it has checkpointed, at seeded moments after that.
    let mut kills = 0;
    for attempt in 0..12 {
        if kills == 3 {
            break;
        }
        let before = moto.keys(BUCKET, "big/_checkpoints/");
        let mut child = spawn(&pipeline, None);
        let started = Instant::now();
        while moto.keys(BUCKET, "big/_checkpoints/") == before && child.try_wait().expect("try_wait").is_none() {
            assert!(started.elapsed() < Duration::from_secs(600), "no checkpoint appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(600)));
        let _ = child.kill();
        let status = wait(&mut child);
        if killed(status) {
            kills += 1;
        } else {
            assert!(status.success(), "attempt {attempt}: {status}");
            break;
        }
    }
    assert!(kills >= 2, "only {kills} kills landed");
    run_to_end(&pipeline);

    let mirror = tmp.path().join("mirror");
    let objects = moto.download(BUCKET, "big/", &mirror);
    assert!(hidden(&objects).is_empty(), "temporaries left: {:?}", hidden(&objects));
    assert!(moto.uploads(BUCKET).is_empty(), "multipart uploads left");
    // The archive is the input, and the rows are the input's ids once each.
    let mut want: Vec<String> = crate::support::files_under(&input, ".ndjson")
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("read")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    want.sort();
    let got = crate::support::gunzipped_lines(&py, &mirror.join("raw"));
    assert!(
        got == want,
        "the archive differs from the input ({} lines, {} in)",
        got.len(),
        want.len()
    );
    let rows = crate::support::duckdb(
        &py,
        &format!(
            "select count(*) as n, count(distinct id) as ids, min(id) as lo, max(id) as hi, \
             sum(length(pad)) as pad from read_parquet('{}/**/*.parquet')",
            mirror.join("rows").display()
        ),
    );
    let total = (files * per_file) as u64;
    assert_eq!(rows[0]["n"].as_u64(), Some(total), "{rows:?}");
    assert_eq!(rows[0]["ids"].as_u64(), Some(total), "{rows:?}");
    assert_eq!(rows[0]["pad"].as_u64(), Some(total * 256), "{rows:?}");
    // Several parts each: a multipart ETag ends in `-<parts>`.
    let parts = |prefix: &str| -> Vec<u64> {
        objects
            .iter()
            .filter(|(k, _, _)| k.starts_with(prefix) && !k.contains("_checkpoints"))
            .map(|(_, e, _)| e.rsplit_once('-').and_then(|(_, n)| n.parse().ok()).unwrap_or(1))
            .collect()
    };
    eprintln!(
        "{kills} kills; parts per object: rows {:?}, raw {:?}",
        parts("big/rows/"),
        parts("big/raw/")
    );
    assert!(parts("big/rows/").iter().any(|&n| n >= 2), "{:?}", parts("big/rows/"));
    assert!(parts("big/raw/").iter().any(|&n| n >= 2), "{:?}", parts("big/raw/"));
}

#[test]
fn an_s3_outage_longer_than_the_retries_stops_the_run_and_a_restart_continues() {
    let Some(py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    let s = setup(&moto, 8, 60_000, false);
    // Everything goes well for a while, then S3 answers nothing but SlowDown.
    let proxy = Proxy::start(
        &py,
        "s3_fault_proxy.py",
        &moto.endpoint,
        &["--rate", "0", "--fail-after", "300"],
    );
    fn output(endpoint: &str) -> Output<'_> {
        Output::S3 {
            endpoint,
            bucket: BUCKET,
            prefix: "outage/",
        }
    }
    let dir = s.tmp.path().join("outage");
    let pipeline = pipeline_to(&dir, &s.input, &output(&proxy.endpoint));
    let out = run(sluice().arg("run").arg(&pipeline).envs(ENV.iter().copied()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SlowDown") && stderr.contains("s3://sluice-sink/outage/"),
        "{stderr}"
    );
    assert!(proxy.stats()["faults"]["outage"].as_u64().unwrap_or(0) > 0);
    drop(proxy);
    // The same pipeline, S3 back: it continues from its last checkpoint, exactly once.
    let pipeline = pipeline_to(&dir, &s.input, &output(&moto.endpoint));
    let out = run(sluice().arg("run").arg(&pipeline).envs(ENV.iter().copied()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed       from checkpoint"));
    check_against_clean(&py, &moto, &s, "outage/", "mirror");
}

#[test]
fn scenario_3_windows_land_on_s3_by_ticker_equal_to_duckdb() {
    let Some(py) = python() else { return };
    let Some(moto) = Moto::start() else { return };
    moto.bucket("market");
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    let file = pipelines.join("ticks-window.toml");
    let text = std::fs::read_to_string(&file).expect("read");
    let local = "type = \"parquet\"\npath = \"../out/ticks-window\"\n";
    assert!(text.contains(local), "the example's sink changed");
    let s3 = format!(
        "type = \"s3\"\nbucket = \"market\"\nprefix = \"windows/\"\nregion = \"us-east-1\"\n\
         endpoint_url = \"{}\"\nforce_path_style = true\n",
        moto.endpoint
    );
    std::fs::write(&file, text.replace(local, &s3)).expect("write");
    let out = run(sluice().arg("run").arg(&file).envs(ENV.iter().copied()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mirror = tmp.path().join("mirror");
    let objects = moto.download("market", "windows/", &mirror);
    let data: Vec<&String> = objects
        .iter()
        .map(|(k, _, _)| k)
        .filter(|k| !k.contains("_checkpoints/"))
        .collect();
    assert!(
        !data.is_empty()
            && data
                .iter()
                .all(|k| k.starts_with("windows/ticker=") && k.ends_with(".parquet")),
        "{data:?}"
    );
    let ticks = crate::windows::compare(&py, &mirror, &pipelines.join("data/ticks.ndjson"));
    assert!(ticks > 0);
    assert!(hidden(&objects).is_empty() && moto.uploads("market").is_empty());
}
