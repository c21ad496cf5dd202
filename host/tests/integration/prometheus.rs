//! A real Prometheus for the metrics tests (Debian's `prometheus` package, which brings
//! `promtool`): scrapes given targets every second on a free loopback port, with its data in
//! a temporary folder; stopped when dropped. Also a plain HTTP GET for scraping by hand.
//! Under `CI=true` (or the test command), a Prometheus that cannot start fails the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

/// A program from Debian's package, on `PATH` or in `/usr/bin`.
pub fn program(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `promtool` or `None` (outside CI) when it is not installed.
pub fn promtool() -> Option<PathBuf> {
    let found = program("promtool");
    if found.is_none() {
        assert!(
            !crate::support::services_required(),
            "promtool is not installed (scripts/test.sh installs Debian's prometheus package)"
        );
        eprintln!("SKIPPED: promtool is not installed; run scripts/test.sh");
    }
    found
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0, so the body ends with the connection): the
/// status code and the body, or `None` when nothing listens.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// A query string value, percent-encoded.
pub fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Start Prometheus under `dir`, scraping `targets` (host:port) every second, or `None`
    /// (outside CI) when it is not installed.
    pub fn start(dir: &Path, targets: &[String]) -> Option<Prometheus> {
        let Some(binary) = program("prometheus") else {
            assert!(
                !crate::support::services_required(),
                "prometheus is not installed (scripts/test.sh installs Debian's prometheus package)"
            );
            eprintln!("SKIPPED: prometheus is not installed; run scripts/test.sh");
            return None;
        };
        std::fs::create_dir_all(dir).expect("prometheus dir");
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: sluice\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("config");
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("starting prometheus");
        let mut p = Prometheus { child, port, log };
        // Ready once its API answers; it loads in well under a second, but a busy machine
        // is waited for as long as the process lives.
        let started = Instant::now();
        loop {
            if let Some((200, _)) = get(port, "/-/ready") {
                break;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited at start ({status}): {}", p.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "prometheus never became ready: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(p)
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query through the HTTP API: each result's labels and value.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let (code, body) = get(self.port, &format!("/api/v1/query?query={}", encode(promql)))
            .unwrap_or_else(|| panic!("prometheus did not answer: {}", self.log()));
        assert_eq!(code, 200, "query {promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("query JSON");
        v["data"]["result"]
            .as_array()
            .expect("a vector result")
            .iter()
            .map(|r| {
                let labels = r["metric"].as_object().cloned().unwrap_or_default();
                let value = r["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
