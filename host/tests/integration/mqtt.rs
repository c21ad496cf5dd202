//! The MQTT source against a real mosquitto, with devices simulated by a real client
//! (paho-mqtt, `scripts/mqtt_publish.py`): mutual TLS, QoS 1, acknowledgement only after
//! the commit, SIGKILLs and a broker restart mid-stream, wildcards and a shared subscription.
//! Every test compares the Parquet output, read back by DuckDB, with what the broker
//! acknowledged to the publisher: every message exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::support::{dead_letters, duckdb, python, sluice, workspace};

struct Setup {
    python: PathBuf,
    broker: Broker,
    dir: tempfile::TempDir,
}

fn setup(max_inflight: u32) -> Option<Setup> {
    let python = python()?;
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(dir.path(), max_inflight)?;
    Some(Setup { python, broker, dir })
}

struct Options<'a> {
    name: &'a str,
    client_id: &'a str,
    topics: &'a str,
    tls: bool,
    max_inflight: u32,
}

impl Setup {
    fn pipeline(&self, o: &Options<'_>) -> PathBuf {
        let certs = &self.broker.certs;
        let url = if o.tls {
            format!(
                "url = \"mqtts://localhost:{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
                self.broker.tls_port,
                certs.ca.display(),
                certs.client_cert.display(),
                certs.client_key.display()
            )
        } else {
            format!("url = \"mqtt://127.0.0.1:{}\"", self.broker.port)
        };
        let text = format!(
            r#"
[pipeline]
name = "{name}"
[source]
type = "mqtt"
{url}
topics = {topics}
client_id = "{client_id}"
qos = 1
max_inflight = {inflight}
max_latency = "200ms"
max_message_bytes = 65536
topic_column = {{ name = "device", level = 1 }}
[source.schema]
client_id = {{ type = "string", nullable = false }}
timestamp = "string"
temperature = "double"
humidity = "double"
count = "long"
[sink]
type = "parquet"
path = "{name}-out"
max_file_age = "1s"
[checkpoint]
interval = "1s"
"#,
            name = o.name,
            topics = o.topics,
            client_id = o.client_id,
            inflight = o.max_inflight,
        );
        let path = self.dir.path().join(format!("{}.toml", o.name));
        std::fs::write(&path, text).expect("write pipeline");
        path
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}-out"))
    }

    fn start(&self, pipeline: &Path, client_id: &str) -> Running {
        let mut command = sluice();
        command.env("SLUICE_LOG", "info").stderr(Stdio::null());
        self.start_command(pipeline, client_id, command)
    }

    /// As [`start`](Self::start), from a command with settings (and stderr) of its own.
    fn start_command(&self, pipeline: &Path, client_id: &str, mut command: Command) -> Running {
        let connected = format!(" as {client_id} ");
        let subscribed = format!(": {client_id} ");
        let count = |needle: &str| self.broker.log().matches(needle).count();
        let (connections, subscriptions) = (count(&connected), count(&subscribed));
        // A new session subscribes; a resumed one is already subscribed at the broker.
        let fresh =
            connections == 0 || std::fs::read_to_string(pipeline).is_ok_and(|t| t.contains("clean_session = true"));
        let child = command
            .arg("run")
            .arg(pipeline)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sluice");
        let mut child = Running(child);
        // Connected once the broker logs this connection, subscribed once it logs the
        // subscription (mosquitto's `log_type subscribe`).
        let started = Instant::now();
        while count(&connected) == connections || (fresh && count(&subscribed) == subscriptions) {
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("sluice exited ({status}) before subscribing: {}", self.broker.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "sluice did not connect and subscribe: {}",
                self.broker.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn publish(&self, args: &[&str], tls: bool) -> Child {
        let mut cmd = Command::new(&self.python);
        cmd.arg(workspace().join("scripts/mqtt_publish.py"));
        if tls {
            let c = &self.broker.certs;
            cmd.args(["--port", &self.broker.tls_port.to_string()])
                .arg("--ca")
                .arg(&c.ca)
                .arg("--cert")
                .arg(&c.client_cert)
                .arg("--key")
                .arg(&c.client_key);
        } else {
            cmd.args(["--host", "127.0.0.1", "--port", &self.broker.port.to_string()]);
        }
        cmd.arg("--log")
            .arg(self.dir.path().join("published.jsonl"))
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("publisher")
    }

    /// What the broker acknowledged to the publisher: (client_id, count) → temperature.
    fn published(&self) -> BTreeMap<(String, i64), f64> {
        let text = std::fs::read_to_string(self.dir.path().join("published.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("published line");
                (
                    (
                        v["client_id"].as_str().expect("id").to_owned(),
                        v["count"].as_i64().expect("count"),
                    ),
                    v["temperature"].as_f64().expect("temperature"),
                )
            })
            .collect()
    }

    /// Every row written (sealed files only), with its multiplicity.
    fn written(&self, outs: &[PathBuf]) -> BTreeMap<(String, i64), (u64, f64, String)> {
        let mut rows = BTreeMap::new();
        for out in outs {
            if crate::support::files_under(out, ".parquet").is_empty() {
                continue;
            }
            let got = duckdb(
                &self.python,
                &format!(
                    "select client_id, count, temperature, device, count(*) over (partition by client_id, count) as n \
                     from read_parquet('{}/**/*.parquet', hive_partitioning = false)",
                    out.display()
                ),
            );
            for r in got {
                let key = (
                    r["client_id"].as_str().expect("id").to_owned(),
                    r["count"].as_i64().expect("count"),
                );
                let entry = rows.entry(key).or_insert((0, 0.0, String::new()));
                entry.0 += 1;
                entry.1 = r["temperature"].as_f64().expect("temperature");
                entry.2 = r["device"].as_str().unwrap_or_default().to_owned();
            }
        }
        rows
    }

    /// Wait until every published message is in the output (or 90 s pass).
    fn wait_for_all(&self, outs: &[PathBuf], want: usize) -> BTreeMap<(String, i64), (u64, f64, String)> {
        let started = Instant::now();
        loop {
            let rows = self.written(outs);
            if rows.len() >= want || started.elapsed() > Duration::from_secs(90) {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A running sluice, killed if the test ends (or fails) before it stopped it.
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn terminate(mut child: Running) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "sluice exited with {status} after SIGTERM");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sluice did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exactly_once(published: &BTreeMap<(String, i64), f64>, written: &BTreeMap<(String, i64), (u64, f64, String)>) {
    let missing: Vec<_> = published.keys().filter(|k| !written.contains_key(*k)).take(5).collect();
    assert!(missing.is_empty(), "lost (first 5): {missing:?}");
    let doubled: Vec<_> = written.iter().filter(|(_, v)| v.0 > 1).take(5).collect();
    assert!(doubled.is_empty(), "duplicated (first 5): {doubled:?}");
    let unknown: Vec<_> = written.keys().filter(|k| !published.contains_key(*k)).take(5).collect();
    assert!(unknown.is_empty(), "never published: {unknown:?}");
}

#[test]
fn fifty_devices_over_mutual_tls_reach_parquet_by_value() {
    let Some(s) = setup(100) else { return };
    let p = s.pipeline(&Options {
        name: "tls",
        client_id: "sluice-etl-1",
        topics: r#"["streaming-data/+"]"#,
        tls: true,
        max_inflight: 100,
    });
    let run = s.start(&p, "sluice-etl-1");
    let publisher = s
        .publish(
            &[
                "--devices",
                "50",
                "--messages",
                "20",
                "--extra",
                "notjson=3",
                "--extra",
                "oversize=2",
                "--extra",
                "badtype=2",
            ],
            true,
        )
        .wait_with_output()
        .expect("publisher");
    assert!(publisher.status.success());
    let published = s.published();
    assert_eq!(published.len(), 1000);
    s.wait_for_all(&[s.out("tls")], published.len());
    terminate(run);
    // Read after the final checkpoint, when nothing can change any more.
    let written = s.written(&[s.out("tls")]);
    exactly_once(&published, &written);
    for ((client, _), (_, _, device)) in &written {
        assert_eq!(device, client, "topic level 1 is the device");
    }
    for (key, t) in &published {
        assert_eq!(written[key].1, *t, "{key:?}");
    }
    // Malformed messages are dead letters with their topic, reason and raw bytes.
    let letters = dead_letters(&s.out("tls").join("_dead_letter"));
    assert_eq!(letters.len(), 7, "{letters:?}");
    for l in &letters {
        let topic = l["source"]["topic"].as_str().expect("topic");
        assert!(topic.starts_with("streaming-data/"), "{l}");
        assert!(l["raw"].is_string(), "{l}");
        if topic.contains("oversize") {
            assert!(
                l["reason"].as_str().expect("reason").contains("max_message_bytes"),
                "{l}"
            );
        }
    }
}

#[test]
fn sigkill_mid_stream_then_restart_every_message_exactly_once() {
    let Some(s) = setup(20) else { return };
    let p = s.pipeline(&Options {
        name: "kill",
        client_id: "sluice-kill",
        topics: r#"["streaming-data/+"]"#,
        tls: false,
        max_inflight: 20,
    });
    let mut run = s.start(&p, "sluice-kill");
    let mut publisher = s.publish(&["--devices", "20", "--messages", "150", "--interval", "0.02"], false);
    // Seeded kill times: 5 SIGKILLs 250–650 ms apart while the devices publish.
    let mut seed = 0x9e37_79b9_u64;
    for _ in 0..5 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(Duration::from_millis(250 + (seed >> 33) % 400));
        assert!(run.try_wait().expect("wait").is_none(), "the run died before its kill");
        run.kill().expect("kill -9");
        run.wait().expect("wait");
        run = Running(
            sluice()
                .arg("run")
                .arg(&p)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("restart"),
        );
    }
    assert!(publisher.wait().expect("publisher").success());
    let published = s.published();
    assert_eq!(published.len(), 3000);
    s.wait_for_all(&[s.out("kill")], published.len());
    terminate(run);
    exactly_once(&published, &s.written(&[s.out("kill")]));
}

#[test]
fn broker_restart_mid_stream_loses_nothing() {
    // An in-flight window of 2: the session drains slowly, so the restart lands mid-stream.
    let Some(mut s) = setup(2) else { return };
    let p = s.pipeline(&Options {
        name: "restart",
        client_id: "sluice-restart",
        topics: r#"["streaming-data/#"]"#,
        tls: false,
        max_inflight: 2,
    });
    let run = s.start(&p, "sluice-restart");
    // The broker acknowledges all of these at once and queues them for our session. Batches
    // that pile up are committed together, so the session drains faster than one window per
    // checkpoint: enough messages that the restart right after the last one still lands
    // mid-stream.
    let publisher = s.publish(&["--devices", "10", "--messages", "1000"], false);
    assert!(publisher.wait_with_output().expect("publisher").status.success());
    let before = s.written(&[s.out("restart")]).len();
    s.broker.restart(Duration::from_millis(1500));
    let published = s.published();
    assert_eq!(published.len(), 10_000);
    assert!(before < published.len(), "the restart should land mid-stream");
    s.wait_for_all(&[s.out("restart")], published.len());
    terminate(run);
    exactly_once(&published, &s.written(&[s.out("restart")]));
}

#[test]
fn a_shared_subscription_spreads_messages_over_two_pipelines_exactly_once() {
    let Some(s) = setup(100) else { return };
    let topics = r#"["$share/etl/streaming-data/#"]"#;
    let a = s.pipeline(&Options {
        name: "share-a",
        client_id: "sluice-a",
        topics,
        tls: false,
        max_inflight: 100,
    });
    let b = s.pipeline(&Options {
        name: "share-b",
        client_id: "sluice-b",
        topics,
        tls: false,
        max_inflight: 100,
    });
    let run_a = s.start(&a, "sluice-a");
    let run_b = s.start(&b, "sluice-b");
    let publisher = s.publish(&["--devices", "10", "--messages", "40"], false);
    assert!(publisher.wait_with_output().expect("publisher").status.success());
    // Not matched by the filter: never read.
    let other = s.publish(
        &[
            "--devices",
            "2",
            "--messages",
            "5",
            "--prefix",
            "other-data",
            "--seed",
            "9",
            "--first-count",
            "1000",
        ],
        false,
    );
    assert!(other.wait_with_output().expect("publisher").status.success());
    let published: BTreeMap<_, _> = s
        .published()
        .into_iter()
        .filter(|((_, count), _)| *count < 1000)
        .collect();
    let outs = [s.out("share-a"), s.out("share-b")];
    s.wait_for_all(&outs, 400);
    terminate(run_a);
    terminate(run_b);
    // Read after both final checkpoints.
    let written_a = s.written(&outs[..1]).len();
    let written_b = s.written(&outs[1..]).len();
    let written_all = s.written(&outs);
    assert_eq!(written_all.len(), 400);
    assert!(
        written_a > 0 && written_b > 0,
        "both members got messages: {written_a} + {written_b}"
    );
    assert_eq!(written_a + written_b, 400);
    exactly_once(&published, &written_all);
}

#[test]
fn the_example_pipeline_reads_devices_from_a_broker() {
    let Some(s) = setup(20) else { return };
    let example = std::fs::read_to_string(workspace().join("pipelines/iot-mqtt.toml")).expect("example");
    let text = example
        .replace("mqtt://localhost:1883", &format!("mqtt://127.0.0.1:{}", s.broker.port))
        .replace("../out/iot-mqtt", "example-out")
        .replace("max_file_age = \"1m\"", "max_file_age = \"1s\"");
    let p = s.dir.path().join("iot-mqtt.toml");
    std::fs::write(&p, text).expect("write");
    let run = s.start(&p, "sluice-etl-1");
    let publisher = s.publish(&["--devices", "5", "--messages", "30"], false);
    assert!(publisher.wait_with_output().expect("publisher").status.success());
    let out = s.dir.path().join("example-out");
    let started = Instant::now();
    let rows = loop {
        let n = if crate::support::files_under(&out, ".parquet").is_empty() {
            0
        } else {
            let r = duckdb(
                &s.python,
                &format!(
                    "select count(distinct (device, count)) as n, count(*) as rows, count(is_anomaly) as flagged_col \
                     from read_parquet('{}/**/*.parquet', hive_partitioning = false)",
                    out.display()
                ),
            );
            r[0]["rows"].as_u64().expect("rows")
        };
        if n >= 150 || started.elapsed() > Duration::from_secs(60) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    terminate(run);
    assert_eq!(rows, 150);
    // Read again after the final checkpoint: each published reading once, with the anomaly
    // stage's flag filled in.
    let r = duckdb(
        &s.python,
        &format!(
            "select count(distinct (device, count)) as n, count(*) as rows, count(is_anomaly) as flagged_col \
             from read_parquet('{}/**/*.parquet', hive_partitioning = false)",
            out.display()
        ),
    );
    assert_eq!(
        (r[0]["n"].as_u64(), r[0]["rows"].as_u64(), r[0]["flagged_col"].as_u64()),
        (Some(150), Some(150), Some(150)),
        "{r:?}"
    );
}

/// Rewrite the pipeline file `p` with `change`.
fn edit(p: &Path, change: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(p).expect("pipeline");
    std::fs::write(p, change(text)).expect("write pipeline");
}

/// The (client_id, count) of every row written under `out`.
fn keys(s: &Setup, out: &Path) -> Vec<(String, i64)> {
    let mut keys: Vec<_> = s
        .written(&[out.to_owned()])
        .into_iter()
        .flat_map(|(k, v)| vec![k; v.0 as usize])
        .collect();
    keys.sort();
    keys
}

/// `devices` × counts `counts`.
fn readings(devices: usize, counts: std::ops::Range<i64>) -> Vec<(String, i64)> {
    let mut keys: Vec<_> = (0..devices)
        .flat_map(|d| counts.clone().map(move |c| (format!("device-{d}"), c)))
        .collect();
    keys.sort();
    keys
}

/// Retained messages the broker replays on subscribing are skipped by default (they were
/// read before, and would be read again at every start), and read with
/// `include_retained = true` (that pipeline subscribes at `qos = 0`, published at QoS 0).
#[test]
fn retained_messages_are_read_only_with_include_retained_at_qos_1_and_0() {
    let Some(s) = setup(20) else { return };
    // Three retained readings (count 1000), published before any pipeline subscribes.
    let retained = s.publish(
        &["--devices", "3", "--messages", "1", "--first-count", "1000", "--retain"],
        false,
    );
    assert!(retained.wait_with_output().expect("publisher").status.success());
    for (name, include) in [("skip", false), ("keep", true)] {
        let client_id = format!("sluice-{name}");
        let p = s.pipeline(&Options {
            name,
            client_id: &client_id,
            topics: r#"["streaming-data/+"]"#,
            tls: false,
            max_inflight: 20,
        });
        if include {
            edit(&p, |t| t.replace("qos = 1\n", "qos = 0\ninclude_retained = true\n"));
        }
        let run = s.start(&p, &client_id);
        let live = s.publish(
            &[
                "--devices",
                "5",
                "--messages",
                "10",
                "--qos",
                if include { "0" } else { "1" },
                "--seed",
                if include { "2" } else { "1" },
            ],
            false,
        );
        assert!(live.wait_with_output().expect("publisher").status.success());
        let want = if include {
            let mut w = readings(5, 0..10);
            w.extend(readings(3, 1000..1001));
            w.sort();
            w
        } else {
            readings(5, 0..10)
        };
        s.wait_for_all(&[s.out(name)], want.len());
        terminate(run);
        assert_eq!(keys(&s, &s.out(name)), want, "include_retained = {include}");
    }
}

/// With `clean_session = true`, readings arrive while the pipeline runs, and what is
/// published while it is down is gone: the broker keeps no session for it (with the default
/// persistent session it would deliver them on the next start).
#[test]
fn a_clean_session_reads_while_running_and_loses_what_came_while_down() {
    let Some(s) = setup(20) else { return };
    let p = s.pipeline(&Options {
        name: "clean",
        client_id: "sluice-clean",
        topics: r#"["streaming-data/+"]"#,
        tls: false,
        max_inflight: 20,
    });
    edit(&p, |t| t.replace("qos = 1\n", "qos = 1\nclean_session = true\n"));
    let out = s.out("clean");
    let mut want = Vec::new();
    for (round, first) in [(0, 0i64), (1, 200)] {
        let run = s.start(&p, "sluice-clean");
        let first_count = first.to_string();
        let seed = (round + 1).to_string();
        let live = s.publish(
            &[
                "--devices",
                "5",
                "--messages",
                "10",
                "--first-count",
                &first_count,
                "--seed",
                &seed,
            ],
            false,
        );
        assert!(live.wait_with_output().expect("publisher").status.success());
        want.extend(readings(5, first..first + 10));
        want.sort();
        s.wait_for_all(std::slice::from_ref(&out), want.len());
        terminate(run);
        if round == 0 {
            // Published (and acknowledged by the broker) while the pipeline is down.
            let down = s.publish(
                &[
                    "--devices",
                    "5",
                    "--messages",
                    "10",
                    "--first-count",
                    "100",
                    "--seed",
                    "9",
                ],
                false,
            );
            assert!(down.wait_with_output().expect("publisher").status.success());
        }
    }
    assert_eq!(
        keys(&s, &out),
        want,
        "both running rounds once each, nothing from while it was down"
    );
}

/// A broker that refuses the credentials ends the run at once with the broker's reason and
/// exit code 1, never the password; the right password (from `${VAR}`) connects.
#[test]
fn refused_credentials_stop_the_run_with_the_reason_and_the_right_ones_connect() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let passwords = dir.path().join("passwords");
    std::fs::write(&passwords, "").expect("password file");
    let made = Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&passwords)
        .args(["sensor-etl", "s3cret-Pa55"])
        .status()
        .expect("mosquitto_passwd (installed with mosquitto)");
    assert!(made.success());
    let extra = format!("password_file {}", passwords.display());
    let Some(broker) = Broker::start_with(dir.path(), 20, &extra) else {
        return;
    };
    let s = Setup { python, broker, dir };
    let p = s.pipeline(&Options {
        name: "auth",
        client_id: "sluice-auth",
        topics: r#"["streaming-data/+"]"#,
        tls: false,
        max_inflight: 20,
    });
    edit(&p, |t| {
        t.replace(
            "qos = 1\n",
            "qos = 1\nusername = \"sensor-etl\"\npassword = \"${MQTT_PASSWORD}\"\n",
        )
    });
    let refused = crate::support::run(sluice().env("MQTT_PASSWORD", "wrong-guess-123").arg("run").arg(&p));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the connection"), "{stderr}");
    assert!(
        !stderr.contains("wrong-guess-123"),
        "the password is never printed: {stderr}"
    );

    let mut command = sluice();
    command.env("MQTT_PASSWORD", "s3cret-Pa55").stderr(Stdio::null());
    let run = s.start_command(&p, "sluice-auth", command);
    let live = s.publish(&["--devices", "2", "--messages", "5"], false);
    assert!(live.wait_with_output().expect("publisher").status.success());
    s.wait_for_all(&[s.out("auth")], 10);
    terminate(run);
    assert_eq!(keys(&s, &s.out("auth")), readings(2, 0..5));
}

/// A broker that lost the session (restarted without its state) no longer knows our
/// subscription: the run reconnects, sees no session, subscribes again and reads what is
/// published afterwards.
#[test]
fn after_the_broker_loses_the_session_the_run_subscribes_again() {
    let Some(mut s) = setup(20) else { return };
    let p = s.pipeline(&Options {
        name: "lost",
        client_id: "sluice-lost",
        topics: r#"["streaming-data/+"]"#,
        tls: false,
        max_inflight: 20,
    });
    let run = s.start(&p, "sluice-lost");
    let first = s.publish(&["--devices", "5", "--messages", "10"], false);
    assert!(first.wait_with_output().expect("publisher").status.success());
    let out = s.out("lost");
    s.wait_for_all(std::slice::from_ref(&out), 50);
    s.broker.restart_forgetting();
    // Subscribed again: the broker's log (kept across the restart) shows a second subscription.
    let started = Instant::now();
    while s.broker.log().matches(": sluice-lost 1 streaming-data/+").count() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no new subscription after the session was lost: {}",
            s.broker.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = s.publish(
        &[
            "--devices",
            "5",
            "--messages",
            "10",
            "--first-count",
            "100",
            "--seed",
            "2",
        ],
        false,
    );
    assert!(second.wait_with_output().expect("publisher").status.success());
    s.wait_for_all(std::slice::from_ref(&out), 100);
    terminate(run);
    let mut want = readings(5, 0..10);
    want.extend(readings(5, 100..110));
    want.sort();
    assert_eq!(keys(&s, &out), want);
}

/// Killed right after a checkpoint commits and before its PUBACKs leave: the broker sends
/// those messages again (DUP), and the next run recognises them as committed and drops them.
/// Every message once, by the publisher's log, and the drop was seen in the runs' logs.
#[test]
fn a_crash_between_the_commit_and_the_puback_duplicates_nothing() {
    let Some(s) = setup(20) else { return };
    let p = s.pipeline(&Options {
        name: "acked",
        client_id: "sluice-acked",
        topics: r#"["streaming-data/+"]"#,
        tls: false,
        max_inflight: 20,
    });
    let logs = s.dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let command = |fault: Option<u64>, n: usize| {
        let mut c = sluice();
        c.env("SLUICE_LOG", "info,sluice::source::mqtt=debug");
        if let Some(k) = fault {
            c.env("SLUICE_FAULT", format!("checkpoint-committed:{k}"));
        }
        c.stderr(std::fs::File::create(logs.join(format!("run-{n}.log"))).expect("log"));
        c
    };
    let mut publisher = s.publish(&["--devices", "10", "--messages", "120", "--interval", "0.02"], false);
    let mut crashes = 0;
    for (n, k) in [3u64, 2, 4, 2].into_iter().enumerate() {
        let mut run = s.start_command(&p, "sluice-acked", command(Some(k), n));
        let status = crate::crash::wait(&mut run);
        assert!(
            crate::crash::killed(status),
            "run {n} was to die at its commit {k}: {status}"
        );
        crashes += 1;
    }
    let run = s.start_command(&p, "sluice-acked", command(None, 9));
    assert!(publisher.wait().expect("publisher").success());
    let published = s.published();
    assert_eq!(published.len(), 1200);
    s.wait_for_all(&[s.out("acked")], published.len());
    terminate(run);
    exactly_once(&published, &s.written(&[s.out("acked")]));
    let dropped: usize = crate::support::files_under(&logs, ".log")
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .matches("Dropped a redelivery of a message already committed")
                .count()
        })
        .sum();
    assert!(
        dropped > 0,
        "{crashes} crashes after a commit, yet no redelivery was dropped"
    );
}

/// The redelivery set saved with each checkpoint holds only messages whose PUBACK may not
/// have reached the broker: the broker's answer to the marker after each checkpoint's
/// PUBACKs proves the rest arrived. So after thousands of messages the set is about an
/// in-flight window, not one entry per message of the last minute (which made every
/// checkpoint of a busy stream hundreds of kilobytes). Exactly once, by the publisher's log.
#[test]
fn the_checkpointed_redelivery_set_stays_within_the_in_flight_window() {
    use base64::Engine as _;
    let Some(s) = setup(20) else { return };
    let p = s.pipeline(&Options {
        name: "ledger",
        client_id: "sluice-ledger",
        topics: r#"["streaming-data/+"]"#,
        tls: false,
        max_inflight: 20,
    });
    // Its metrics too: the messages in flight stay within the window.
    let port = crate::prometheus::free_port();
    let mut text = std::fs::read_to_string(&p).expect("pipeline");
    text.push_str(&format!("\n[telemetry]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(&p, text).expect("pipeline");
    let run = s.start(&p, "sluice-ledger");
    let mut publisher = s.publish(&["--devices", "10", "--messages", "300", "--interval", "0.002"], false);
    assert!(publisher.wait().expect("publisher").success());
    let published = s.published();
    assert_eq!(published.len(), 3000);
    s.wait_for_all(&[s.out("ledger")], published.len());
    let (_, metrics) = crate::prometheus::get(port, "/metrics").expect("metrics served");
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains("pipeline=\"ledger\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert!(value("sluice_source_records_total") >= 3000.0, "every message read");
    let in_flight = value("sluice_source_in_flight_messages");
    assert!(
        in_flight <= 20.0,
        "{in_flight} messages in flight through a window of 20"
    );
    terminate(run);
    exactly_once(&published, &s.written(&[s.out("ledger")]));
    let checkpoints = crate::support::files_under(&s.out("ledger").join("_checkpoints"), ".json");
    let last = checkpoints.iter().max().expect("a checkpoint");
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(last).expect("read")).expect("checkpoint JSON");
    let saved = checkpoint["position"]["state"].as_str().unwrap_or_default();
    let entries = base64::engine::general_purpose::STANDARD
        .decode(saved)
        .expect("base64")
        .len()
        / 10;
    assert!(
        entries <= 40,
        "{entries} messages remembered in {} after 3000 messages through a window of 20",
        last.display()
    );
}

/// A broker that refuses every subscription (SUBACK 0x80), for the one refusal mosquitto
/// cannot be made to send (it grants every subscription and filters on delivery): fault
/// injection, speaking just enough MQTT 3.1.1. Prints its port, serves one client.
const REFUSING_BROKER: &str = r#"
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
def packet():
    head = c.recv(1)
    if not head:
        sys.exit(0)
    length, shift = 0, 0
    while True:
        b = c.recv(1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    body = b""
    while len(body) < length:
        body += c.recv(length - len(body))
    return head[0] >> 4, body
while True:
    kind, body = packet()
    if kind == 1:    # CONNECT -> CONNACK, no session
        c.sendall(bytes([0x20, 2, 0, 0]))
    elif kind == 8:  # SUBSCRIBE -> SUBACK refusing each filter
        filters, i = 0, 2
        while i < len(body):
            n = (body[i] << 8) | body[i + 1]
            i += 2 + n + 1
            filters += 1
        c.sendall(bytes([0x90, 2 + filters, body[0], body[1]] + [0x80] * filters))
    elif kind == 12: # PINGREQ -> PINGRESP
        c.sendall(bytes([0xD0, 0]))
    elif kind == 14: # DISCONNECT
        sys.exit(0)
"#;

#[test]
fn a_refused_subscription_stops_the_run_naming_the_topic() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let mut broker = Command::new(&python)
        .args(["-c", REFUSING_BROKER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(broker.stdout.as_mut().expect("stdout")),
        &mut port,
    )
    .expect("port");
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        format!(
            "[source]\ntype = \"mqtt\"\nurl = \"mqtt://127.0.0.1:{}\"\ntopics = [\"streaming-data/+\"]\n\
             [source.schema]\nclient_id = \"string\"\n[sink]\ntype = \"parquet\"\npath = \"out\"\n",
            port.trim()
        ),
    )
    .expect("pipeline");
    // No component to compile: the refusal ends the run within seconds, or never.
    let mut child = sluice()
        .arg("run")
        .arg(&p)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = broker.kill();
            panic!("a refused subscription did not stop the run");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let _ = broker.kill();
    let _ = broker.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused the subscription to \"streaming-data/+\""),
        "{stderr}"
    );
}
