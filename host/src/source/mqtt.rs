//! JSON messages from an MQTT broker (AWS IoT Core, mosquitto, EMQX, HiveMQ…), cut into
//! chunks by size or by latency.
//!
//! Delivery: a QoS 1 message is acknowledged (PUBACK) only after the checkpoint holding its
//! row (or its dead letter) has committed, so a crash before that makes the broker send it
//! again. A redelivery of a message that *was* committed is recognised by the [`ledger`]
//! and dropped: every message reaches the output exactly once, as long as the broker keeps
//! the session (`clean_session = false`, and the broker persists sessions across its own
//! restarts). QoS 0 messages are at most once.
//!
//! Threads: a connection thread drives the client (keep-alive, reconnects with capped
//! exponential backoff and jitter, resubscribing when the broker lost the session) and
//! classifies arrivals; the pipeline's reader thread takes them from a channel and cuts
//! chunks; the writer sends PUBACKs through an [`Acknowledger`] after each checkpoint.
//!
//! The broker sends at most its in-flight limit of unacknowledged QoS 1 messages (mosquitto:
//! `max_inflight_messages`, 20 by default) and then waits for PUBACKs, so a chunk is also cut
//! when it holds half of `max_inflight` messages: the other half arrives while the first is
//! committed, instead of the broker waiting for a whole window's PUBACKs with nothing to
//! send (one chunk of a whole window would leave the pipeline idle between commits).

mod chunk;
mod driver;
mod error;
pub mod ledger;
mod outbox;
mod plan;
pub mod tls;

pub use chunk::line_of;
pub use error::MqttError;
pub use plan::plan;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rumqttc::{Client, Connection, MqttOptions, Publish, QoS, Transport};

use self::chunk::ChunkBuilder;
use self::driver::Driver;
use self::ledger::Ledger;
use self::outbox::Outbox;
use super::{Acknowledge, Source, SourceError, SourceSpec};
use crate::checkpoint::SourcePosition;
use crate::record::Chunk;

/// How long a quiet subscription waits before handing over an empty chunk (see
/// [`MqttSource::next_chunk`]).
const IDLE_TICK: Duration = Duration::from_secs(1);

/// Where and how to connect, what to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// `mqtt://host:port` or `mqtts://host:port`, as configured.
    pub url: String,
    /// Host name (also the TLS server name).
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS files, for `mqtts://`.
    pub tls: Option<tls::TlsFiles>,
    /// Topic filters.
    pub topics: Vec<String>,
    /// Client id.
    pub client_id: String,
    /// 0 or 1.
    pub qos: u8,
    /// Start without the broker's stored session.
    pub clean_session: bool,
    /// Credentials.
    pub credentials: Option<(String, String)>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// The longest a chunk waits after its first message.
    pub max_latency: Duration,
    /// Messages per chunk at most.
    pub batch_rows: usize,
    /// The broker's in-flight window for unacknowledged QoS 1 messages.
    pub max_inflight: usize,
    /// Larger payloads are dead letters.
    pub max_message_bytes: usize,
    /// Keep retained messages sent on subscribing.
    pub include_retained: bool,
    /// Attempts at the first connection before giving up.
    pub connect_attempts: u32,
    /// `(column, level)`: the topic (or one level of it) injected as a column.
    pub topic_column: Option<(String, Option<usize>)>,
}

impl MqttSettings {
    /// Split `mqtt://host:port` / `mqtts://host:port` (default ports 1883 / 8883).
    pub fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "expected mqtt://host:port or mqtts://host:port, found \"{url}\""
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| format!("\"{p}\" is not a port number"))?;
                (h, port)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("no host name in \"{url}\""));
        }
        Ok((tls, host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
    }

    /// What checkpoints of this source are tied to: the broker and the session.
    pub fn source_id(&self) -> String {
        format!("mqtt:{}:{}#{}", self.host, self.port, self.client_id)
    }
}

/// A planned MQTT source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSpec(pub Arc<MqttSettings>);

impl SourceSpec for MqttSpec {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn id(&self) -> String {
        self.0.source_id()
    }

    fn open(&self, stop: &Arc<AtomicBool>) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(MqttSource::new(self.0.clone(), stop.clone())?))
    }
}

/// What the connection thread hands the reader.
#[derive(Debug, Clone)]
enum Arrived {
    Message(Message),
    Fatal(MqttError),
}

#[derive(Debug, Clone)]
struct Message {
    /// QoS 1: its packet id, and its fingerprint if the connection thread took it already.
    qos1: Option<(u16, Option<u64>)>,
    topic: Arc<str>,
    payload: bytes::Bytes,
}

/// Sends the PUBACKs of what a checkpoint committed. Shared with the pipeline's writer.
#[derive(Clone)]
pub struct Acknowledger {
    client: Client,
    ledger: Arc<Mutex<Ledger>>,
    outbox: Arc<Mutex<Outbox>>,
}

impl std::fmt::Debug for Acknowledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acknowledger").finish_non_exhaustive()
    }
}

impl Acknowledger {
    /// The redelivery set to store with a checkpoint covering chunks up to `seq`.
    pub fn persist(&self, seq: u64) -> Option<String> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner).persist(seq)
    }

    /// The checkpoint covering chunks up to `seq` committed: acknowledge their messages.
    ///
    /// The PUBACKs and the marker are queued for the connection thread, which writes them
    /// with one flush; the last PUBACK goes through rumqttc and wakes it (see [`outbox`]).
    pub fn committed(&self, seq: u64) {
        let (ids, marker) = {
            let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
            let ids = ledger.committed(seq, Instant::now());
            let marker = !ids.is_empty() && ledger.marker_wanted();
            (ids, marker)
        };
        let Some((last, rest)) = ids.split_last() else { return };
        // The broker's answer to the marker proves it read the PUBACKs before it, which the
        // ledger can then forget.
        self.outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rest.iter().map(|id| id.pkid), usize::from(marker));
        // Fails only when the connection thread is gone, like the queued PUBACKs.
        ack(&self.client, last.pkid);
    }
}

impl Acknowledge for Acknowledger {
    fn persist(&self, last_seq: u64) -> Option<serde_json::Value> {
        Acknowledger::persist(self, last_seq).map(serde_json::Value::String)
    }

    fn committed(&self, last_seq: u64) {
        Acknowledger::committed(self, last_seq);
    }
}

/// A topic filter none of `topics` is: unsubscribing from it changes nothing at the broker
/// but must be answered. No `$` prefix (brokers reserve those) and no wildcards.
fn marker_filter(topics: &[String]) -> String {
    let mut filter = String::from("sluice/ack-marker");
    while topics.contains(&filter) {
        filter.push_str("/x");
    }
    filter
}

fn ack(client: &Client, pkid: u16) {
    let mut publish = Publish::new("", QoS::AtLeastOnce, Vec::new());
    publish.pkid = pkid;
    // Fails only when the connection thread is gone (the run is ending): the broker then
    // redelivers, and the ledger saved with the checkpoint drops the copy.
    let _ = client.try_ack(&publish);
}

/// An MQTT subscription read as chunks.
pub struct MqttSource {
    settings: Arc<MqttSettings>,
    label: Arc<str>,
    client: Client,
    arrivals: Receiver<Arrived>,
    ledger: Arc<Mutex<Ledger>>,
    /// PUBACKs and markers for the connection thread to write.
    outbox: Arc<Mutex<Outbox>>,
    next_seq: u64,
    /// The run's stop request (SIGTERM): ends reading.
    stop: Arc<AtomicBool>,
    /// Set when this source is dropped: ends the connection thread.
    closing: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    started: bool,
    connection: Option<Connection>,
}

impl std::fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSource")
            .field("url", &self.settings.url)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl MqttSource {
    /// A source for `settings`; it connects on the first read. `stop` ends reading.
    pub fn new(settings: Arc<MqttSettings>, stop: Arc<AtomicBool>) -> Result<Self, SourceError> {
        let mut options = MqttOptions::new(settings.client_id.clone(), settings.host.clone(), settings.port);
        options
            .set_keep_alive(settings.keep_alive)
            .set_clean_session(settings.clean_session)
            .set_manual_acks(true)
            // The MQTT maximum: an oversized message is a dead letter, never a broken connection.
            .set_max_packet_size(268_435_460, 1 << 20);
        if let Some((user, password)) = &settings.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        if let Some(files) = &settings.tls {
            let config = tls::client_config(files).map_err(|e| MqttError::Tls(e.to_string()))?;
            options.set_transport(Transport::Tls(rumqttc::TlsConfiguration::Rustls(config)));
        }
        // Room for a PUBACK per packet id: acknowledging never blocks the writer.
        let (client, connection) = Client::new(options, 70_000);
        let (_, arrivals) = crossbeam_channel::bounded(1);
        Ok(MqttSource {
            label: Arc::from(settings.url.as_str()),
            settings,
            client,
            arrivals,
            ledger: Arc::default(),
            outbox: Arc::default(),
            next_seq: 0,
            stop,
            closing: Arc::default(),
            thread: None,
            started: false,
            connection: Some(connection),
        })
    }

    /// Continue after a checkpoint: chunk numbers and the redelivery set.
    fn restore(&mut self, position: &SourcePosition) -> Result<(), SourceError> {
        self.next_seq = position.next_seq;
        let saved = position.state.as_ref().and_then(serde_json::Value::as_str);
        let ledger = Ledger::restore(saved).map_err(MqttError::Ledger)?;
        *self.ledger.lock().unwrap_or_else(PoisonError::into_inner) = ledger;
        Ok(())
    }

    /// What it reads.
    pub fn settings(&self) -> &MqttSettings {
        &self.settings
    }

    /// The handle the writer acknowledges through.
    pub fn acknowledger(&self) -> Acknowledger {
        Acknowledger {
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            outbox: self.outbox.clone(),
        }
    }

    fn start(&mut self) -> Result<(), SourceError> {
        let Some(connection) = self.connection.take() else {
            return Ok(());
        };
        let (tx, rx) = crossbeam_channel::bounded(65_536);
        self.arrivals = rx;
        let driver = Driver {
            settings: self.settings.clone(),
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            arrivals: tx,
            stop: self.closing.clone(),
            outbox: self.outbox.clone(),
            marker: Arc::from(marker_filter(&self.settings.topics)),
        };
        let thread = std::thread::Builder::new()
            .name("sluice-mqtt".into())
            .spawn(move || driver.run(connection))
            .map_err(|e| MqttError::Thread(e.to_string()))?;
        self.thread = Some(thread);
        self.started = true;
        Ok(())
    }

    /// The next chunk: up to `batch_rows` messages (or half of `max_inflight` QoS 1 messages), cut
    /// at most `max_latency` after its first message. `None` once asked to stop.
    fn read_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        if !self.started {
            self.start()?;
        }
        let s = self.settings.clone();
        let limit = if s.qos == 1 {
            s.batch_rows.min(s.max_inflight.div_ceil(2).max(1))
        } else {
            s.batch_rows
        };
        let idle_since = Instant::now();
        let first = loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            if idle_since.elapsed() >= IDLE_TICK {
                // Nothing arrived: an empty chunk still gets a checkpoint, which seals
                // files past `max_file_age`, so a quiet stream's rows become visible.
                return Ok(Some(self.cut(ChunkBuilder::new(&s))));
            }
            match self.arrivals.recv_timeout(Duration::from_millis(50)) {
                Ok(a) => break a,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        };
        let deadline = Instant::now() + s.max_latency;
        let mut builder = ChunkBuilder::new(&s);
        builder.push(first)?;
        while builder.count < limit {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.arrivals.recv_timeout(deadline - now) {
                Ok(a) => builder.push(a)?,
                Err(_) => break,
            }
        }
        Ok(Some(self.cut(builder)))
    }

    fn cut(&mut self, builder: ChunkBuilder<'_>) -> Chunk {
        let seq = self.next_seq;
        self.next_seq += 1;
        let (chunk, ids) = builder.finish(seq, self.label.clone());
        self.ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read(seq, ids);
        chunk
    }
}

impl Source for MqttSource {
    fn resume(&mut self, position: &SourcePosition) -> Result<(), SourceError> {
        self.restore(position)
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        self.read_chunk()
    }

    fn bounded(&self) -> bool {
        false
    }

    fn acknowledger(&self) -> Option<Box<dyn Acknowledge>> {
        (self.settings.qos == 1).then(|| Box::new(MqttSource::acknowledger(self)) as Box<dyn Acknowledge>)
    }

    fn in_flight(&self) -> Option<u64> {
        (self.settings.qos == 1).then(|| self.ledger.lock().unwrap_or_else(PoisonError::into_inner).pending() as u64)
    }
}

impl Drop for MqttSource {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        // Queued PUBACKs go out before the DISCONNECT.
        let _ = self.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_filter_is_none_of_the_subscriptions() {
        assert_eq!(marker_filter(&["a/+".into()]), "sluice/ack-marker");
        let taken = vec!["sluice/ack-marker".to_owned(), "sluice/ack-marker/x".to_owned()];
        assert_eq!(marker_filter(&taken), "sluice/ack-marker/x/x");
    }

    #[test]
    fn urls_give_host_port_and_tls() {
        assert_eq!(
            MqttSettings::parse_url("mqtts://a1b2-ats.iot.eu-west-1.amazonaws.com:8883"),
            Ok((true, "a1b2-ats.iot.eu-west-1.amazonaws.com".into(), 8883))
        );
        assert_eq!(
            MqttSettings::parse_url("mqtt://localhost"),
            Ok((false, "localhost".into(), 1883))
        );
        assert_eq!(
            MqttSettings::parse_url("mqtts://broker"),
            Ok((true, "broker".into(), 8883))
        );
        assert!(MqttSettings::parse_url("mqtt://host:notaport").is_err());
        assert!(MqttSettings::parse_url("http://host").is_err());
        assert!(MqttSettings::parse_url("mqtt://").is_err());
    }
}
