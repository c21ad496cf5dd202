//! A real Kinesis for the Kinesis tests: kinesis-local (etspaceman's kinesis-mock compiled to
//! JavaScript, pinned in `scripts/kinesis/package.json`, installed by scripts/test.sh) run by
//! `node` on free ports, with short resharding delays. It behaves as AWS does where the source
//! must get things right: 56-digit sequence numbers, a split or merge keeps the parents'
//! records, a closed shard's last GetRecords has no NextShardIterator and lists ChildShards.
//!
//! Beside it: [`tool`] runs `scripts/kinesis_tool.py` (boto3 and the KPL aggregator), whose
//! `--log` of what it put is the tests' oracle, and [`ThrottleProxy`] answers GetRecords with
//! `ProvisionedThroughputExceededException` as a shard over its budget does.
//!
//! Under `CI=true` (or `SLUICE_REQUIRE_SERVICES=1`) an emulator that cannot start fails the
//! test; elsewhere a missing `node` or package skips it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

/// How long the emulator may take to answer after it starts (a cold `node` on a loaded CI
/// machine takes seconds; the wait ends at once if the process exits).
const START_LIMIT: Duration = Duration::from_secs(120);

/// Emulator settings unless a test overrides them: resharding and consumer registration are
/// quick, so a test waits milliseconds for ACTIVE (AWS takes seconds to minutes).
const DEFAULT_ENV: &[(&str, &str)] = &[
    ("CREATE_STREAM_DURATION", "100ms"),
    ("DELETE_STREAM_DURATION", "100ms"),
    ("SPLIT_SHARD_DURATION", "100ms"),
    ("MERGE_SHARDS_DURATION", "100ms"),
    ("UPDATE_SHARD_COUNT_DURATION", "100ms"),
    ("REGISTER_STREAM_CONSUMER_DURATION", "200ms"),
    // (DEREGISTER_STREAM_CONSUMER_DURATION is wired to StopStreamEncryption in 0.6.2:
    // deregistering always takes 500 ms.)
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCOUNT_ID", "000000000000"),
    ("SHOULD_PERSIST_DATA", "false"),
    // Unset, the package logs nothing; at INFO it logs its start and every refused request.
    ("LOG_LEVEL", "INFO"),
];

/// A running kinesis-local, killed when dropped.
pub struct Kinesis {
    /// `http://127.0.0.1:PORT`: the plain-HTTP endpoint (awsJson1.1 over HTTP/1.1, and
    /// SubscribeToShard over HTTP/2 cleartext).
    pub endpoint: String,
    /// `https://127.0.0.1:PORT`: the same API over TLS (the package's self-signed certificate
    /// for `localhost`; clients must not verify it).
    pub tls_endpoint: String,
    child: Child,
    dir: Option<tempfile::TempDir>,
}

/// kinesis-local's `main.js`: `SLUICE_KINESIS_LOCAL`, else where `npm ci --prefix scripts/kinesis`
/// puts it.
pub fn package() -> PathBuf {
    match std::env::var_os("SLUICE_KINESIS_LOCAL") {
        Some(p) => PathBuf::from(p),
        None => support::workspace().join("scripts/kinesis/node_modules/kinesis-local/main.js"),
    }
}

fn node_works() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Two distinct free loopback ports (both held while choosing, so they differ).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = |l: &TcpListener| l.local_addr().expect("bound").port();
    (port(&a), port(&b))
}

/// Why one launch did not give a running emulator.
enum Failed {
    /// Another process took a port between our choice and the emulator's bind: try others.
    PortTaken,
    Other(String),
}

impl Kinesis {
    /// Start with the default settings.
    pub fn start() -> Option<Kinesis> {
        Self::start_with(&[])
    }

    /// Start with extra emulator settings (e.g. `("SPLIT_SHARD_DURATION", "2s")`, `("LOG_LEVEL",
    /// "DEBUG")`), which override the defaults. `None` when `node` or the package is missing
    /// and services are not required; panics when they are and the emulator cannot start.
    pub fn start_with(env: &[(&str, &str)]) -> Option<Kinesis> {
        let main = package();
        let missing = if !main.is_file() {
            Some(format!(
                "kinesis-local is not installed at {} (scripts/test.sh runs `npm ci --prefix scripts/kinesis`; \
                 SLUICE_KINESIS_LOCAL overrides the path)",
                main.display()
            ))
        } else if !node_works() {
            Some("node is not installed (scripts/test.sh installs nodejs and npm)".to_owned())
        } else {
            None
        };
        if let Some(why) = missing {
            assert!(!support::services_required(), "{why}");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let main = main.canonicalize().expect("kinesis-local path");
        let mut last = String::new();
        for _ in 0..3 {
            match Self::launch(&main, env) {
                Ok(kinesis) => return Some(kinesis),
                Err(Failed::PortTaken) => last = "a port was taken by another process".to_owned(),
                Err(Failed::Other(why)) => panic!("kinesis-local did not start: {why}"),
            }
        }
        panic!("kinesis-local did not start after three tries: {last}");
    }

    fn launch(main: &Path, env: &[(&str, &str)]) -> Result<Kinesis, Failed> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(log_file(dir.path())).expect("emulator log");
        let (port, tls_port) = free_ports();
        let package_dir = main.parent().expect("main.js is in the package folder");
        let mut cmd = Command::new("node");
        cmd.arg(main)
            // server.json (its TLS certificate) is found relative to the working directory.
            .current_dir(package_dir)
            .env("KINESIS_MOCK_PLAIN_PORT", port.to_string())
            .env("KINESIS_MOCK_TLS_PORT", tls_port.to_string())
            .env("KINESIS_MOCK_CERT_PATH", package_dir.join("server.json"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        for (k, v) in DEFAULT_ENV.iter().chain(env) {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| Failed::Other(format!("spawning node: {e}")))?;
        let mut kinesis = Kinesis {
            endpoint: format!("http://127.0.0.1:{port}"),
            tls_endpoint: format!("https://127.0.0.1:{tls_port}"),
            child,
            dir: Some(dir),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = kinesis.child.try_wait().expect("waiting for node") {
                let log = kinesis.log();
                if log.contains("EADDRINUSE") {
                    return Err(Failed::PortTaken);
                }
                return Err(Failed::Other(format!("node exited ({status}):\n{}", tail(&log, 40))));
            }
            if answers_list_streams(port) && TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
                // Ours, not another process's on a port taken after we chose it: node exits
                // at once (EADDRINUSE) when it cannot bind, so it must still be running.
                std::thread::sleep(Duration::from_millis(100));
                if kinesis.child.try_wait().expect("waiting for node").is_none() {
                    return Ok(kinesis);
                }
                continue;
            }
            if started.elapsed() > START_LIMIT {
                return Err(Failed::Other(format!(
                    "no answer on port {port} within {START_LIMIT:?}:\n{}",
                    tail(&kinesis.log(), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The emulator's output so far.
    pub fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(log_file(d.path())).ok())
            .unwrap_or_default()
    }
}

fn log_file(dir: &Path) -> PathBuf {
    dir.join("kinesis-local.log")
}

impl Drop for Kinesis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let text = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
            let kept = dir.keep();
            eprintln!(
                "--- kinesis-local log (kept in {}), last lines:\n{}",
                kept.display(),
                tail(&text, 60)
            );
        }
    }
}

/// Whether a Kinesis API answers on `port`: a ListStreams call over a raw connection (the
/// emulator wants an Authorization header and a date, not a valid signature).
fn answers_list_streams(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let body = "{}";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=sluice-test/20260101/us-east-1/kinesis/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if conn.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains("StreamNames")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A Python that can run the Kinesis tools (boto3 and aws-kinesis-agg beside the readers), or
/// `None` (outside CI) to skip.
pub fn python() -> Option<PathBuf> {
    let python = support::python()?;
    let ok = Command::new(&python)
        .args(["-c", "import boto3, aws_kinesis_agg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "{} lacks boto3 or aws-kinesis-agg (scripts/test.sh installs scripts/requirements-test.txt)",
        python.display()
    );
    assert!(!support::services_required(), "{why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// Run `scripts/kinesis_tool.py --endpoint ENDPOINT ARGS…` and return its stdout; a failure
/// (or a run past two minutes) fails the test with its stderr.
/// Merge `shard` and `adjacent` of `stream`, waiting until the stream is active again.
pub fn merge(python: &Path, endpoint: &str, stream: &str, shard: &str, adjacent: &str) {
    tool(
        python,
        endpoint,
        &["merge", "--stream", stream, "--shard", shard, "--adjacent", adjacent],
    );
}

pub fn tool(python: &Path, endpoint: &str, args: &[&str]) -> String {
    let mut child = Command::new(python)
        .arg(support::workspace().join("scripts/kinesis_tool.py"))
        .args(["--endpoint", endpoint])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kinesis_tool.py");
    let out = support::wait_output(&mut child, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "kinesis_tool.py {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the tool prints UTF-8")
}

/// The JSON lines a tool printed or logged.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// `scripts/throttle_proxy.py` in front of the emulator (see [`support::Proxy`]).
pub struct ThrottleProxy;

impl ThrottleProxy {
    /// Start the proxy with `args` (e.g. `["--throttle-getrecords", "3"]`).
    pub fn start(python: &Path, upstream: &str, args: &[&str]) -> support::Proxy {
        support::Proxy::start(python, "throttle_proxy.py", upstream, args)
    }
}
