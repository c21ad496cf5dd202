//! Source kinds through the registry: the `datagen` generator's records (archived by a raw
//! sink in the same run) give the windows DuckDB computes from that archive; metadata
//! columns name each row's file.

use std::path::Path;

use crate::support::{dead_letters, duckdb, python, run, sluice};

#[test]
fn generated_ticks_give_the_windows_duckdb_computes_from_their_archive() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        r#"
[source]
type = "datagen"
template = "ticks"
rows = 30000
partitions = 4
disorder = "5s"
interval = "50ms"
seed = 11
batch_rows = 1000
[[transform]]
name = "per-minute"
plugin = "window"
watermark = { column = "event_time", max_out_of_orderness = "5s" }
config = { time_column = "event_time", window = { type = "tumbling", size = "1m" }, group_by = ["ticker"], aggregates = [{ fn = "avg", column = "price", as = "avg_price" }, { fn = "count", as = "ticks" }] }
[[sink]]
name = "windows"
type = "parquet"
path = "out"
[[sink]]
name = "generated"
type = "local"
format = "raw"
input = "source"
path = "raw"
[dead_letter]
path = "dead"
[checkpoint]
path = "checkpoints"
interval = "200ms"
"#,
    )
    .expect("write pipeline");
    let out = run(sluice().arg("run").arg(&pipeline));
    assert!(out.status.success());
    let dead = dead_letters(&tmp.path().join("dead"));
    assert!(dead.is_empty(), "late ticks: {} (first {:?})", dead.len(), dead.first());
    // DuckDB computes the windows from the archive of the generated records.
    let archive = format!("{}/**/*.gz", tmp.path().join("raw").display());
    let total = crate::windows::compare(&py, &tmp.path().join("out"), Path::new(&archive));
    assert_eq!(total, 30_000, "every generated tick is in a window");
    // A second run resumes at the end of every generator partition: nothing more.
    let again = run(sluice().arg("run").arg(&pipeline));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("read          0 rows"));
}

#[test]
fn metadata_columns_name_each_rows_file_partition_and_ingest_time() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    for (name, n) in [("a.ndjson", 30), ("b.ndjson", 70)] {
        let text: String = (0..n).map(|i| format!("{{\"id\":\"{name}-{i}\"}}\n")).collect();
        std::fs::write(input.join(name), text).expect("write");
    }
    std::fs::write(input.join("b.ndjson").with_extension("bad"), "").expect("write");
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[source]
type = "file"
path = "{}/*.ndjson"
batch_rows = 16
metadata = {{ file = "_file", partition = "_partition", ingest_time = "_ingested" }}
[source.schema]
id = "string"
[sink]
type = "parquet"
path = "out"
"#,
            input.display()
        ),
    )
    .expect("write pipeline");
    let out = run(sluice().arg("run").arg(&pipeline));
    assert!(out.status.success());
    let rows = duckdb(
        &py,
        &format!(
            "select id, _file, _partition, _ingested is not null as stamped from read_parquet('{}/*.parquet')",
            tmp.path().join("out").display()
        ),
    );
    assert_eq!(rows.len(), 100);
    for r in &rows {
        let id = r["id"].as_str().expect("id");
        let file = r["_file"].as_str().expect("file");
        let name = Path::new(file).file_name().expect("name").to_string_lossy();
        assert!(id.starts_with(name.as_ref()), "{r:?}");
        assert_eq!(r["_partition"], r["_file"]);
        assert_eq!(r["stamped"], serde_json::Value::Bool(true));
    }

    // A file source has no topics: refused at validate, at the key.
    let bad = tmp.path().join("bad.toml");
    let text = std::fs::read_to_string(&pipeline)
        .expect("read")
        .replace("file = \"_file\"", "topic = \"_topic\"");
    std::fs::write(&bad, text).expect("write");
    let out = run(sluice().arg("validate").arg(&bad));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("source.metadata.topic") && stderr.contains("no `topic`"),
        "{stderr}"
    );
}

fn id_lines(prefix: &str, range: std::ops::Range<u32>) -> String {
    range.map(|i| format!("{{\"id\":\"{prefix}-{i}\"}}\n")).collect()
}

fn ids(py: &Path, out: &Path) -> Vec<String> {
    let rows = duckdb(
        py,
        &format!(
            "select id from read_parquet('{}/**/*.parquet') order by id",
            out.display()
        ),
    );
    rows.iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect()
}

fn file_pipeline(dir: &Path, checkpoint: &str) -> std::path::PathBuf {
    let pipeline = dir.join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[source]\ntype = \"file\"\npath = \"in\"\nbatch_rows = 4\n[source.schema]\nid = \"string\"\n[sink]\ntype = \"parquet\"\npath = \"out\"\n{checkpoint}"
        ),
    )
    .expect("write pipeline");
    pipeline
}

#[test]
fn appended_lines_and_new_files_are_read_by_the_next_run_once() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("b.ndjson"), id_lines("b", 0..10)).expect("write");
    let pipeline = file_pipeline(tmp.path(), "");
    assert!(run(sluice().arg("run").arg(&pipeline)).status.success());
    // Lines appended to a file read before, and a file that sorts before it.
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(input.join("b.ndjson"))
        .expect("open");
    std::io::Write::write_all(&mut more, id_lines("b", 10..15).as_bytes()).expect("append");
    std::fs::write(input.join("a.ndjson"), id_lines("a", 0..3)).expect("write");
    assert!(run(sluice().arg("run").arg(&pipeline)).status.success());
    let mut want: Vec<String> = (0..15)
        .map(|i| format!("b-{i}"))
        .chain((0..3).map(|i| format!("a-{i}")))
        .collect();
    want.sort();
    assert_eq!(ids(&py, &tmp.path().join("out")), want);

    // A file cut shorter than its checkpoint is an error naming it, not a silent reread.
    std::fs::write(input.join("b.ndjson"), id_lines("b", 0..2)).expect("truncate");
    let out = run(sluice().arg("run").arg(&pipeline));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("b.ndjson") && stderr.contains("replaced or truncated") && stderr.contains("--from-scratch"),
        "{stderr}"
    );
}

#[test]
fn without_checkpoints_a_rerun_rewrites_the_same_files_and_keeps_no_state() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("a.ndjson"), id_lines("a", 0..9)).expect("write");
    let pipeline = file_pipeline(tmp.path(), "[checkpoint]\nenabled = false\n");
    for _ in 0..2 {
        assert!(run(sluice().arg("run").arg(&pipeline)).status.success());
    }
    assert!(!tmp.path().join("out/_checkpoints").exists(), "no checkpoint is kept");
    let want: Vec<String> = {
        let mut w: Vec<String> = (0..9).map(|i| format!("a-{i}")).collect();
        w.sort();
        w
    };
    assert_eq!(
        ids(&py, &tmp.path().join("out")),
        want,
        "read twice, written once under the same names"
    );
}

/// An input file replaced by a shorter one since the checkpoint stops the next run with an
/// error naming it (exit code 1) and leaves the output as it was; `--from-scratch` then
/// reads the new file.
#[test]
fn an_input_file_that_shrank_since_the_checkpoint_stops_the_run_and_changes_nothing() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let write = |ids: std::ops::Range<u64>| {
        let text: String = ids.map(|id| format!("{{\"id\":{id}}}\n")).collect();
        std::fs::write(tmp.path().join("in.ndjson"), text).expect("write input");
    };
    std::fs::write(
        tmp.path().join("p.toml"),
        "[source]\ntype = \"file\"\npath = \"in.ndjson\"\nbatch_rows = 100\n[source.schema]\nid = \"long\"\n\
         [sink]\ntype = \"parquet\"\npath = \"out\"\n",
    )
    .expect("write pipeline");
    let ids = || {
        duckdb(
            &py,
            &format!(
                "select count(*) as n, count(distinct id) as ids, max(id) as hi from read_parquet('{}/out/**/*.parquet')",
                tmp.path().display()
            ),
        )[0]
        .clone()
    };
    write(0..1000);
    let first = run(sluice().arg("run").arg(tmp.path().join("p.toml")));
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(ids()["n"], 1000);

    write(5000..5400);
    let shrunk = run(sluice().arg("run").arg(tmp.path().join("p.toml")));
    let stderr = String::from_utf8_lossy(&shrunk.stderr);
    assert_eq!(shrunk.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in.ndjson") && stderr.contains("replaced or truncated"),
        "{stderr}"
    );
    let after = ids();
    assert_eq!(
        (after["n"].clone(), after["hi"].clone()),
        (1000.into(), 999.into()),
        "output untouched"
    );

    let again = run(sluice().arg("run").arg("--from-scratch").arg(tmp.path().join("p.toml")));
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let rows = duckdb(
        &py,
        &format!(
            "select count(*) as n from read_parquet('{}/out/**/*.parquet') where id >= 5000",
            tmp.path().display()
        ),
    );
    assert_eq!(rows[0]["n"], 400, "the new file read from its start");
}

/// A checkpoint written by an earlier version (format 1: one file and an offset) is read:
/// the files sorting before its file count as read, its file resumes at the offset, and the
/// files after it are read whole.
#[test]
fn a_format_1_checkpoint_resumes_mid_file_and_skips_the_files_before_it() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let mut b_offset = 0;
    for (name, ids) in [("a", 0..10), ("b", 10..20), ("c", 20..30)] {
        let lines: Vec<String> = ids.map(|id| format!("{{\"id\":{id}}}\n")).collect();
        if name == "b" {
            b_offset = lines[..4].iter().map(String::len).sum::<usize>();
        }
        std::fs::write(dir.join(format!("{name}.ndjson")), lines.concat()).expect("write input");
    }
    std::fs::write(
        dir.join("p.toml"),
        "[source]\ntype = \"file\"\npath = \"*.ndjson\"\nbatch_rows = 3\n[source.schema]\nid = \"long\"\n\
         [sink]\ntype = \"parquet\"\npath = \"out\"\n",
    )
    .expect("write pipeline");
    let checkpoints = dir.join("out/_checkpoints");
    std::fs::create_dir_all(&checkpoints).expect("mkdir");
    let old = serde_json::json!({
        "format": 1, "sluice_version": "0.1.0", "epoch": 4, "pipeline": "p",
        "source": format!("file:{}/*.ndjson", dir.display()),
        "position": {"next_seq": 7, "file": format!("{}/b.ndjson", dir.display()), "offset": b_offset, "line": 4},
        "finished": false, "stateful_stages": [], "states": [], "outputs": [],
        "totals": {"rows_read": 14, "rows_written": 14, "dead_letters": 0}
    });
    std::fs::write(
        checkpoints.join("checkpoint-00000000000000000004.json"),
        serde_json::to_vec_pretty(&old).expect("json"),
    )
    .expect("write checkpoint");
    let out = run(sluice().arg("run").arg(dir.join("p.toml")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: Vec<i64> = duckdb(
        &py,
        &format!(
            "select id from read_parquet('{}/out/**/*.parquet') order by id",
            dir.display()
        ),
    )
    .iter()
    .map(|r| r["id"].as_i64().expect("id"))
    .collect();
    assert_eq!(
        ids,
        (14..30).collect::<Vec<_>>(),
        "b from its fifth line, then all of c"
    );
}
