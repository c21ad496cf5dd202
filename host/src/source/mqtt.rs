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
//! when it holds `max_inflight` messages: waiting longer would only wait for `max_latency`.

pub mod ledger;
pub mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rumqttc::{Client, Connection, ConnectionError, Event, MqttOptions, Packet, Publish, QoS, Transport};

use self::ledger::{Arrival, Ledger, MessageId};
use arrow::datatypes::{DataType, Field, Schema};

use super::registry::{PlannedSource, arrow_schema};
use super::{Acknowledge, Source, SourceError, SourceSpec};
use crate::checkpoint::SourcePosition;
use crate::config::{Diagnostic, MqttSourceConfig, PipelineConfig};
use crate::record::{BadRecord, Chunk, Origins, RecordOrigin, SourceSpan};

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

/// What the connection thread hands the reader.
/// A planned MQTT source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSpec(pub Arc<MqttSettings>);

impl SourceSpec for MqttSpec {
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

#[derive(Debug, Clone)]
enum Arrived {
    Message(Message),
    Fatal(String),
}

#[derive(Debug, Clone)]
struct Message {
    id: Option<MessageId>,
    topic: Arc<str>,
    payload: bytes::Bytes,
}

/// Sends the PUBACKs of what a checkpoint committed. Shared with the pipeline's writer.
#[derive(Clone)]
pub struct Acknowledger {
    client: Client,
    ledger: Arc<Mutex<Ledger>>,
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
    pub fn committed(&self, seq: u64) {
        let ids = self
            .ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .committed(seq, Instant::now());
        for id in ids {
            ack(&self.client, id.pkid);
        }
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
            let config = tls::client_config(files).map_err(|e| SourceError::Mqtt(e.to_string()))?;
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
        let ledger = Ledger::restore(saved).map_err(SourceError::Mqtt)?;
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
        };
        let thread = std::thread::Builder::new()
            .name("sluice-mqtt".into())
            .spawn(move || driver.run(connection))
            .map_err(|e| SourceError::Mqtt(format!("cannot start the MQTT thread: {e}")))?;
        self.thread = Some(thread);
        self.started = true;
        Ok(())
    }

    /// The next chunk: up to `batch_rows` messages (or `max_inflight` QoS 1 messages), cut
    /// at most `max_latency` after its first message. `None` once asked to stop.
    fn read_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        if !self.started {
            self.start()?;
        }
        let s = self.settings.clone();
        let limit = if s.qos == 1 {
            s.batch_rows.min(s.max_inflight.max(1))
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

/// Collects one chunk's messages as NDJSON lines.
struct ChunkBuilder<'a> {
    settings: &'a MqttSettings,
    chunk: Chunk,
    origins: Vec<RecordOrigin>,
    broker: Arc<str>,
    ids: Vec<MessageId>,
    count: usize,
}

impl<'a> ChunkBuilder<'a> {
    fn new(settings: &'a MqttSettings) -> Self {
        ChunkBuilder {
            settings,
            chunk: Chunk::default(),
            origins: Vec::new(),
            broker: Arc::from(settings.url.as_str()),
            ids: Vec::new(),
            count: 0,
        }
    }

    fn push(&mut self, arrived: Arrived) -> Result<(), SourceError> {
        let m = match arrived {
            Arrived::Message(m) => m,
            Arrived::Fatal(message) => return Err(SourceError::Mqtt(message)),
        };
        let index = self.count;
        self.count += 1;
        if let Some(id) = m.id {
            self.ids.push(id);
        }
        let origin = RecordOrigin::Message {
            broker: self.broker.clone(),
            topic: m.topic.clone(),
        };
        if m.payload.len() > self.settings.max_message_bytes {
            self.chunk.rejected.push(BadRecord {
                origin: origin.clone(),
                index,
                raw: m.payload[..1024.min(m.payload.len())].to_vec(),
                reason: format!(
                    "message of {} bytes is over max_message_bytes ({}); raw holds its first 1024 bytes",
                    m.payload.len(),
                    self.settings.max_message_bytes
                ),
            });
            // An empty record keeps the message's place; the decoder skips it.
            self.chunk.data.push(b'\n');
        } else {
            line_of(
                &m.payload,
                &m.topic,
                self.settings.topic_column.as_ref(),
                &mut self.chunk.data,
            );
        }
        self.chunk.ends.push(self.chunk.data.len());
        self.origins.push(origin);
        Ok(())
    }

    fn finish(self, seq: u64, label: Arc<str>) -> (Chunk, Vec<MessageId>) {
        let end = self.chunk.data.len() as u64;
        let chunk = Chunk {
            seq,
            span: SourceSpan {
                file: label,
                first_line: 1,
                last_line: self.count as u64,
                start_offset: 0,
                end_offset: end,
            },
            origins: Origins::Each(self.origins),
            ingest_micros: chrono::Utc::now().timestamp_micros(),
            ..self.chunk
        };
        (chunk, self.ids)
    }
}

/// One payload as one NDJSON line: line breaks (only whitespace between JSON tokens; inside
/// strings they must be escaped) become spaces, and the topic column, if any, is put first
/// in the object. A payload that is not an object is left as it is, to fail decoding.
pub fn line_of(payload: &[u8], topic: &str, column: Option<&(String, Option<usize>)>, out: &mut Vec<u8>) {
    let start = out.len();
    let body = match column {
        Some((name, level)) => {
            let open = payload.iter().position(|b| !b.is_ascii_whitespace());
            match open {
                Some(i) if payload[i] == b'{' => {
                    let value = match level {
                        None => Some(topic),
                        Some(l) => topic.split('/').nth(*l),
                    };
                    out.push(b'{');
                    out.extend_from_slice(serde_json::to_string(name).unwrap_or_default().as_bytes());
                    out.push(b':');
                    match value {
                        Some(v) => out.extend_from_slice(serde_json::to_string(v).unwrap_or_default().as_bytes()),
                        None => out.extend_from_slice(b"null"),
                    }
                    let rest = &payload[i + 1..];
                    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
                    if !empty {
                        out.push(b',');
                    }
                    rest
                }
                _ => payload,
            }
        }
        None => payload,
    };
    out.extend_from_slice(body);
    for b in &mut out[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    out.push(b'\n');
}

/// The connection thread.
struct Driver {
    settings: Arc<MqttSettings>,
    client: Client,
    ledger: Arc<Mutex<Ledger>>,
    arrivals: Sender<Arrived>,
    stop: Arc<AtomicBool>,
}

/// Plan an MQTT source: its settings (TLS material loaded, so `validate` finds bad files),
/// and the declared schema plus the topic column.
pub fn plan(cfg: &PipelineConfig, m: &MqttSourceConfig, diags: &mut Vec<Diagnostic>) -> Option<PlannedSource> {
    let (tls, host, port) = match MqttSettings::parse_url(&m.url.value) {
        Ok(parts) => parts,
        Err(e) => {
            diags.push(Diagnostic {
                span: m.url.span.clone(),
                key: m.url.key.clone(),
                message: e,
            });
            return None;
        }
    };
    if !tls && let Some(f) = m.ca_file.as_ref().or(m.cert_file.as_ref()) {
        diags.push(Diagnostic {
            span: f.span.clone(),
            key: f.key.clone(),
            message: format!("TLS files are set but {} is plain TCP: use mqtts://", m.url.value),
        });
    }
    let tls = tls.then(|| tls::TlsFiles {
        ca_file: m.ca_file.as_ref().map(|f| f.value.clone()),
        client: m
            .cert_file
            .as_ref()
            .zip(m.key_file.as_ref())
            .map(|(c, k)| (c.value.clone(), k.value.clone())),
    });
    // Bad TLS material is found now, by `sluice validate` too, naming the file.
    if let Some(files) = &tls
        && let Err(e) = tls::client_config(files)
    {
        let (span, key) = [&m.ca_file, &m.cert_file, &m.key_file]
            .into_iter()
            .flatten()
            .find(|f| f.value.display().to_string() == e.path)
            .map_or((m.url.span.clone(), m.url.key.clone()), |f| {
                (f.span.clone(), f.key.clone())
            });
        diags.push(Diagnostic {
            span,
            key,
            message: e.to_string(),
        });
    }
    let mut fields: Vec<Field> = arrow_schema(&m.schema)
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if let Some(c) = &m.topic_column {
        if fields.iter().any(|f| f.name() == &c.name) {
            diags.push(Diagnostic {
                span: m.url.span.clone(),
                key: "source.topic_column".into(),
                message: format!(
                    "topic_column `{}` is also a column of [source.schema]: pick another name",
                    c.name
                ),
            });
        }
        fields.insert(0, Field::new(&c.name, DataType::Utf8, c.level.is_some()));
    }
    if !cfg.checkpoint.enabled && m.qos == 1 {
        diags.push(Diagnostic {
            span: m.url.span.clone(),
            key: "checkpoint.enabled".into(),
            message: "an MQTT source at QoS 1 acknowledges messages when a checkpoint commits: checkpoints cannot be disabled".into(),
        });
    }
    let settings = MqttSettings {
        url: m.url.value.clone(),
        host,
        port,
        tls,
        topics: m.topics.value.clone(),
        client_id: m.client_id.clone().unwrap_or_else(|| format!("sluice-{}", cfg.name)),
        qos: m.qos,
        clean_session: m.clean_session,
        credentials: m.username.clone().map(|u| (u, m.password.clone().unwrap_or_default())),
        keep_alive: m.keep_alive,
        max_latency: m.max_latency,
        batch_rows: m.batch_rows,
        max_inflight: m.max_inflight,
        max_message_bytes: m.max_message_bytes,
        include_retained: m.include_retained,
        topic_column: m.topic_column.as_ref().map(|c| (c.name.clone(), c.level)),
    };
    Some(PlannedSource {
        spec: Arc::new(MqttSpec(Arc::new(settings))),
        schema: Arc::new(Schema::new(fields)),
    })
}

/// Capped exponential backoff with full jitter: 100 ms doubling to 30 s.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Backoff { attempt: 0, seed }
    }

    /// Reset after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next wait: uniform in [cap/2, cap] with cap = min(30 s, 100 ms × 2^attempt).
    pub fn next_delay(&mut self) -> Duration {
        let cap_ms = (100u64 << self.attempt.min(9)).min(30_000);
        self.attempt += 1;
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        Duration::from_millis(cap_ms / 2 + self.seed % (cap_ms / 2 + 1))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    fn run(self, mut connection: Connection) {
        let mut backoff = Backoff::new();
        let mut subscribed = false;
        let mut was_connected = false;
        loop {
            let event = match connection.recv() {
                Ok(e) => e,
                Err(_) => return, // every client handle is gone
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    self.ledger
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .connected(Instant::now());
                    if was_connected {
                        tracing::info!(url = %self.settings.url, session_present = ack.session_present, "MQTT reconnected");
                    } else {
                        tracing::info!(url = %self.settings.url, session_present = ack.session_present, "MQTT connected");
                    }
                    was_connected = true;
                    if !subscribed || !ack.session_present {
                        let qos = if self.settings.qos == 1 {
                            QoS::AtLeastOnce
                        } else {
                            QoS::AtMostOnce
                        };
                        let filters = self
                            .settings
                            .topics
                            .iter()
                            .map(|t| rumqttc::SubscribeFilter::new(t.clone(), qos));
                        if let Err(e) = self.client.try_subscribe_many(filters) {
                            let _ = self.arrivals.send(Arrived::Fatal(format!("cannot subscribe: {e}")));
                            return;
                        }
                        subscribed = true;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    for (code, topic) in ack.return_codes.iter().zip(&self.settings.topics) {
                        if matches!(code, rumqttc::SubscribeReasonCode::Failure) {
                            let _ = self.arrivals.send(Arrived::Fatal(format!(
                                "the broker refused the subscription to \"{topic}\" (not allowed, or not a valid filter)"
                            )));
                            return;
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if !self.on_publish(p) {
                        return;
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => {
                    let _ = self.arrivals.send(Arrived::Fatal(format!(
                        "{} refused the connection: {code:?} (check client_id, credentials and the certificate's policy)",
                        self.settings.url
                    )));
                    return;
                }
                Err(e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let wait = backoff.next_delay();
                    tracing::warn!(url = %self.settings.url, error = %e, retry_in_ms = wait.as_millis() as u64, "MQTT connection lost; reconnecting");
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Classify and forward one message; false when the reader is gone.
    fn on_publish(&self, p: Publish) -> bool {
        let qos1 = p.qos == QoS::AtLeastOnce;
        if p.retain && !self.settings.include_retained {
            if qos1 {
                ack(&self.client, p.pkid);
            }
            return true;
        }
        let id = if qos1 {
            let id = MessageId::of(p.pkid, &p.topic, &p.payload);
            let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
            match ledger.arrive(id, p.dup) {
                Arrival::New => Some(id),
                Arrival::AlreadyPending => return true,
                Arrival::AlreadyWritten => {
                    ledger.reacknowledged(id, Instant::now());
                    drop(ledger);
                    ack(&self.client, p.pkid);
                    return true;
                }
            }
        } else {
            None
        };
        let message = Arrived::Message(Message {
            id,
            topic: Arc::from(p.topic.as_str()),
            payload: p.payload,
        });
        if qos1 {
            // Bounded by the broker's in-flight window: never blocks for long.
            return self.arrivals.send(message).is_ok();
        }
        // QoS 0 is at most once: when the pipeline falls behind, drop rather than stall the
        // connection (and its keep-alive).
        match self.arrivals.try_send(message) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!("MQTT QoS 0 message dropped: the pipeline is behind");
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(payload: &str, topic: &str, column: Option<(&str, Option<usize>)>) -> String {
        let column = column.map(|(n, l)| (n.to_owned(), l));
        let mut out = Vec::new();
        line_of(payload.as_bytes(), topic, column.as_ref(), &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn payloads_become_one_line_with_the_topic_first() {
        assert_eq!(line("{\"a\":\n 1}", "t/x", None), "{\"a\":  1}\n");
        assert_eq!(
            line(" {\"a\":1}", "streaming-data/dev-7", Some(("device", Some(1)))),
            "{\"device\":\"dev-7\",\"a\":1}\n"
        );
        assert_eq!(line("{ }", "a/b", Some(("topic", None))), "{\"topic\":\"a/b\" }\n");
        assert_eq!(line("{}", "a", Some(("t", Some(3)))), "{\"t\":null}\n");
        assert_eq!(line("[1,2]", "a", Some(("t", None))), "[1,2]\n");
        assert_eq!(line("{}", "we\"ird", Some(("t", None))), "{\"t\":\"we\\\"ird\"}\n");
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

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(30));
        }
        assert!(b.next_delay() >= Duration::from_secs(15));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
