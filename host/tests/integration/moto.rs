//! A real S3 API for the S3 checkpoint store's tests: moto's server (`moto[server]` from
//! scripts/requirements-test.txt) run by the test Python on a free port, with [`Moto::boto3`]
//! to create buckets and look at objects independently of the store.
//!
//! Under `CI=true` (or `SLUICE_REQUIRE_SERVICES=1`) a server that cannot start fails the test;
//! elsewhere a missing Python or package skips it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

/// How long the server may take to answer after it starts (Python imports are slow on a
/// loaded CI machine; the wait ends at once if the process exits).
const START_LIMIT: Duration = Duration::from_secs(120);

/// Region and fake credentials the server and every client use.
pub const ENV: &[(&str, &str)] = &[
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "sluice-test"),
    ("AWS_SECRET_ACCESS_KEY", "sluice-test"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    // No profile of the machine's user leaks in.
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

/// A running moto server, killed when dropped.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    python: PathBuf,
    child: Child,
    dir: Option<tempfile::TempDir>,
}

/// A Python with boto3 and moto's server beside the readers, or `None` (outside CI) to skip.
fn python() -> Option<PathBuf> {
    let python = support::python()?;
    let ok = Command::new(&python)
        .args(["-c", "import boto3, moto.server, flask"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "{} lacks boto3 or moto[server] (scripts/test.sh installs scripts/requirements-test.txt)",
        python.display()
    );
    assert!(!support::services_required(), "{why}");
    eprintln!("SKIPPED: {why}");
    None
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound").port()
}

impl Moto {
    /// Start a server; `None` when Python or moto is missing and services are not required.
    pub fn start() -> Option<Moto> {
        let python = python()?;
        let mut last = String::new();
        for _ in 0..3 {
            match Self::launch(&python) {
                Ok(moto) => return Some(moto),
                Err(why) => last = why,
            }
        }
        panic!("moto_server did not start after three tries: {last}");
    }

    fn launch(python: &Path) -> Result<Moto, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto log");
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        for (k, v) in ENV {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("spawning {}: {e}", python.display()))?;
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            python: python.to_owned(),
            child,
            dir: Some(dir),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = moto.child.try_wait().expect("waiting for moto") {
                return Err(format!("moto exited ({status}):\n{}", tail(&moto.log(), 40)));
            }
            if answers_list_buckets(port) {
                // Ours, not another process's on a port taken after we chose it: moto exits
                // when it cannot bind, so it must still be running.
                std::thread::sleep(Duration::from_millis(100));
                if moto.child.try_wait().expect("waiting for moto").is_none() {
                    return Ok(moto);
                }
                continue;
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!(
                    "no answer on port {port} within {START_LIMIT:?}:\n{}",
                    tail(&moto.log(), 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("moto.log")).ok())
            .unwrap_or_default()
    }

    /// Run Python `code` with `s3`, a boto3 client of this server, defined; its stdout. A
    /// failure fails the test with its stderr.
    pub fn boto3(&self, code: &str) -> String {
        self.python(&format!(
            "s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1')\n{code}",
            self.endpoint
        ))
    }

    /// Run Python `code` with `ddb`, a boto3 DynamoDB client of this server, defined; its stdout.
    pub fn dynamodb(&self, code: &str) -> String {
        self.python(&format!(
            "ddb = boto3.client('dynamodb', endpoint_url='{}', region_name='us-east-1')\n{code}",
            self.endpoint
        ))
    }

    fn python(&self, code: &str) -> String {
        let script = format!("import boto3, json\n{code}");
        let mut cmd = Command::new(&self.python);
        cmd.args(["-c", &script]);
        for (k, v) in ENV {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running python");
        assert!(
            out.status.success(),
            "boto3 failed:\n{code}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys under `prefix` in `bucket`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self.boto3(&format!(
            "r = s3.list_objects_v2(Bucket='{bucket}', Prefix='{prefix}')\n\
             print(json.dumps(sorted(o['Key'] for o in r.get('Contents', []))))"
        ));
        serde_json::from_str(out.trim()).expect("keys")
    }
}

impl Moto {
    /// Create `bucket`.
    pub fn bucket(&self, bucket: &str) {
        self.boto3(&format!("s3.create_bucket(Bucket='{bucket}')"));
    }

    /// Download every object under `prefix` of `bucket` into `dest`, keys as paths below it
    /// (the prefix removed); the keys with their ETags and sizes, sorted.
    pub fn download(&self, bucket: &str, prefix: &str, dest: &Path) -> Vec<(String, String, u64)> {
        let out = self.boto3(&format!(
            "import os\n\
             found = []\n\
             for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}', Prefix='{prefix}'):\n\
             \x20   for o in page.get('Contents', []):\n\
             \x20       path = os.path.join('{dest}', o['Key'][len('{prefix}'):])\n\
             \x20       os.makedirs(os.path.dirname(path), exist_ok=True)\n\
             \x20       s3.download_file('{bucket}', o['Key'], path)\n\
             \x20       found.append((o['Key'], o['ETag'].strip('\"'), o['Size']))\n\
             print(json.dumps(sorted(found)))",
            dest = dest.display()
        ));
        serde_json::from_str(out.trim()).expect("objects")
    }

    /// Keys of the multipart uploads in progress in `bucket`.
    pub fn uploads(&self, bucket: &str) -> Vec<String> {
        let out = self.boto3(&format!(
            "r = s3.list_multipart_uploads(Bucket='{bucket}')\n\
             print(json.dumps(sorted(u['Key'] for u in r.get('Uploads', []))))"
        ));
        serde_json::from_str(out.trim()).expect("uploads")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let text = std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default();
            let kept = dir.keep();
            eprintln!(
                "--- moto log (kept in {}), last lines:\n{}",
                kept.display(),
                tail(&text, 60)
            );
        }
    }
}

/// Whether an S3 API answers ListBuckets on `port` (moto takes any credentials).
fn answers_list_buckets(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if conn.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains("ListAllMyBucketsResult")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
