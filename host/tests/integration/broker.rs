//! A real mosquitto for the MQTT tests: throwaway CA, server and client certificates made
//! with `openssl`, a generated config with a plain and a mutual-TLS listener on free
//! loopback ports, persistence on (so a broker restart keeps sessions and queued messages).
//! Stopped when dropped. Under `CI=true`, a broker that cannot start fails the test.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Certificates for the TLS listener and its clients.
#[derive(Debug, Clone)]
pub struct Certs {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A running mosquitto.
pub struct Broker {
    child: Option<Child>,
    dir: PathBuf,
    pub port: u16,
    pub tls_port: u16,
    pub certs: Certs,
}

/// mosquitto on `PATH` (as scripts/test.sh looks for it), or where Debian puts it.
fn mosquitto() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("mosquitto"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"].map(PathBuf::from))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for localhost / 127.0.0.1, and a client certificate.
fn make_certs(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).expect("cert dir");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut args = vec!["req", "-x509", "-days", "2", "-subj", "/CN=sluice test CA"];
    args.extend(ec);
    args.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &args);
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, cn) in [("server", "localhost"), ("client", "sluice-etl")] {
        let subj = format!("/CN={cn}");
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let mut args = vec!["req", "-subj", &subj, "-keyout", &key, "-out", &csr];
        args.extend(ec);
        openssl(dir, &args);
        let pem = format!("{name}.pem");
        let ext = format!("{name}.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ],
        );
    }
    Certs {
        ca: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}

impl Broker {
    /// Start a broker under `dir` with an in-flight window of `max_inflight` QoS 1 messages
    /// per client, or `None` (outside CI) when mosquitto is not installed.
    pub fn start(dir: &Path, max_inflight: u32) -> Option<Broker> {
        Broker::start_with(dir, max_inflight, "")
    }

    /// As [`start`](Self::start), with `extra` lines of configuration (before the listeners).
    pub fn start_with(dir: &Path, max_inflight: u32, extra: &str) -> Option<Broker> {
        let Some(_) = mosquitto() else {
            assert!(
                !crate::support::services_required(),
                "mosquitto is not installed (scripts/test.sh installs it with apt-get)"
            );
            eprintln!("SKIPPED: mosquitto is not installed; run scripts/test.sh");
            return None;
        };
        let certs = make_certs(&dir.join("certs"));
        let (port, tls_port) = (free_port(), free_port());
        let data = dir.join("broker");
        std::fs::create_dir_all(&data).expect("broker dir");
        let config = format!(
            "user root\n\
             persistence true\n\
             persistence_location {data}/\n\
             autosave_interval 1\n\
             max_inflight_messages {max_inflight}\n\
             max_queued_messages 1000000\n\
             max_queued_bytes 0\n\
             allow_anonymous true\n\
             log_dest file {data}/mosquitto.log\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             log_type information\n\
             log_type subscribe\n\
             {extra}\n\
             listener {port} 127.0.0.1\n\
             listener {tls_port} 127.0.0.1\n\
             cafile {ca}\n\
             certfile {certs}/server.pem\n\
             keyfile {certs}/server.key\n\
             require_certificate true\n",
            data = data.display(),
            ca = certs.ca.display(),
            certs = dir.join("certs").display(),
        );
        std::fs::write(data.join("mosquitto.conf"), config).expect("config");
        let mut broker = Broker {
            child: None,
            dir: data,
            port,
            tls_port,
            certs,
        };
        broker.launch();
        Some(broker)
    }

    fn launch(&mut self) {
        let child = Command::new(mosquitto().expect("mosquitto"))
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || TcpStream::connect(("127.0.0.1", self.tls_port)).is_err()
        {
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().ok().flatten()) {
                panic!("mosquitto exited at start ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "mosquitto did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// Stop gracefully (SIGTERM: mosquitto saves its persistence file), wait `down`, start again
    /// on the same ports.
    pub fn restart(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.launch();
    }

    /// Stop, forget every session and queued message (the persistence file), start again on
    /// the same ports: a broker that lost its state.
    pub fn restart_forgetting(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.join("mosquitto.db"));
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
