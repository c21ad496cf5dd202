//! The connection thread: drives the client (keep-alive, reconnects with the shared backoff
//! policy, resubscribing when the broker lost the session) and classifies arrivals.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use rumqttc::{Client, Connection, ConnectionError, Event, Packet, Publish, QoS};

use super::ledger::{Arrival, Ledger, fingerprint};
use super::outbox::Outbox;
use super::{Arrived, Message, MqttError, MqttSettings, ack};
use crate::retry::Backoff;

/// The connection thread.
pub(super) struct Driver {
    pub(super) settings: Arc<MqttSettings>,
    pub(super) client: Client,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    pub(super) arrivals: Sender<Arrived>,
    pub(super) stop: Arc<AtomicBool>,
    /// PUBACKs and markers the writer queued (see [`Outbox`]).
    pub(super) outbox: Arc<Mutex<Outbox>>,
    /// The filter a marker unsubscribes from.
    pub(super) marker: Arc<str>,
}

/// What the connection thread keeps between events.
#[derive(Default)]
struct Link {
    backoff: Backoff,
    subscribed: bool,
    was_connected: bool,
    attempts: u32,
}

impl Driver {
    /// Drive the connection until the run stops. Its event loop runs on a runtime of this
    /// thread's own (as rumqttc's blocking `Connection` does), so that the thread can also
    /// write the [`Outbox`] between events.
    pub(super) fn run(self, connection: Connection) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                let _ = self.arrivals.send(Arrived::Fatal(MqttError::Thread(e.to_string())));
                return;
            }
        };
        let mut eventloop = connection.eventloop;
        let mut link = Link::default();
        loop {
            let flow = match runtime.block_on(eventloop.poll()) {
                Err(ConnectionError::RequestsDone) => return, // every client handle is gone
                Ok(event) => self.on_event(event, &mut link),
                Err(e) => {
                    // rumqttc keeps the events it queued before the connection broke (packets
                    // read, PUBACKs and UNSUBSCRIBEs written but perhaps never delivered) and
                    // hands them out after the next CONNACK. They belong to the old
                    // connection: handled now, before the ledger counts a new one.
                    let held: Vec<Event> = eventloop.state.events.drain(..).collect();
                    let mut flow = ControlFlow::Continue(());
                    for event in held {
                        flow = self.on_event(event, &mut link);
                        if flow.is_break() {
                            break;
                        }
                    }
                    if flow.is_continue() {
                        self.on_error(e, &mut link)
                    } else {
                        flow
                    }
                }
            };
            if flow.is_break() {
                return;
            }
            Outbox::write(&self.outbox, &runtime, &mut eventloop, &self.marker);
        }
    }

    fn on_event(&self, event: Event, link: &mut Link) -> ControlFlow<()> {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                link.backoff.reset();
                self.ledger().connected(Instant::now());
                if link.was_connected {
                    tracing::info!(url = %self.settings.url, session_present = ack.session_present, "MQTT reconnected");
                } else {
                    tracing::info!(url = %self.settings.url, session_present = ack.session_present, "MQTT connected");
                }
                link.was_connected = true;
                if !link.subscribed || !ack.session_present {
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
                        let _ = self.arrivals.send(Arrived::Fatal(MqttError::Subscribe(e.to_string())));
                        return ControlFlow::Break(());
                    }
                    link.subscribed = true;
                }
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                for (code, topic) in ack.return_codes.iter().zip(&self.settings.topics) {
                    if matches!(code, rumqttc::SubscribeReasonCode::Failure) {
                        let _ = self
                            .arrivals
                            .send(Arrived::Fatal(MqttError::SubscriptionRefused { topic: topic.clone() }));
                        return ControlFlow::Break(());
                    }
                }
            }
            Event::Incoming(Packet::Publish(p)) => {
                if !self.on_publish(p) {
                    return ControlFlow::Break(());
                }
            }
            // What proves PUBACKs reached the broker (see `ledger`).
            Event::Outgoing(rumqttc::Outgoing::PubAck(pkid)) => self.ledger().puback_sent(pkid, Instant::now()),
            Event::Outgoing(rumqttc::Outgoing::Unsubscribe(pkid)) => self.ledger().marker_sent(pkid),
            Event::Incoming(Packet::UnsubAck(ack)) => self.ledger().marker_answered(ack.pkid),
            Event::Outgoing(rumqttc::Outgoing::Disconnect) => return ControlFlow::Break(()),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn on_error(&self, e: ConnectionError, link: &mut Link) -> ControlFlow<()> {
        if let ConnectionError::ConnectionRefused(code) = e {
            let _ = self.arrivals.send(Arrived::Fatal(MqttError::Refused {
                url: self.settings.url.clone(),
                code: format!("{code:?}"),
            }));
            return ControlFlow::Break(());
        }
        if self.stop.load(Ordering::SeqCst) {
            return ControlFlow::Break(());
        }
        let wait = link.backoff.next_delay().unwrap_or(Duration::from_secs(30));
        if !link.was_connected {
            // Never connected: most likely a wrong URL or no broker. Bounded.
            link.attempts += 1;
            if link.attempts >= self.settings.connect_attempts {
                let _ = self.arrivals.send(Arrived::Fatal(MqttError::CannotConnect {
                    url: self.settings.url.clone(),
                    cause: e.to_string(),
                    attempts: link.attempts,
                }));
                return ControlFlow::Break(());
            }
            tracing::warn!(url = %self.settings.url, error = %e, attempt = link.attempts, retry_in_ms = wait.as_millis() as u64, "Cannot connect to the MQTT broker; trying again");
        } else {
            // Connected before: a lost connection is retried until the run stops.
            tracing::warn!(url = %self.settings.url, error = %e, retry_in_ms = wait.as_millis() as u64, "MQTT connection lost; reconnecting");
        }
        std::thread::sleep(wait);
        ControlFlow::Continue(())
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Classify and forward one message; false when the reader is gone.
    fn on_publish(&self, p: Publish) -> bool {
        let at_least_once = p.qos == QoS::AtLeastOnce;
        if p.retain && !self.settings.include_retained {
            if at_least_once {
                ack(&self.client, p.pkid);
            }
            return true;
        }
        let qos1 = if at_least_once {
            // Only a DUP needs its fingerprint now; a new message's is taken by the reader.
            let dup = p.dup.then(|| fingerprint(&p.topic, &p.payload));
            let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
            match ledger.arrive(p.pkid, dup) {
                Arrival::New => Some((p.pkid, dup)),
                Arrival::AlreadyPending => return true,
                Arrival::AlreadyWritten => {
                    tracing::debug!(topic = %p.topic, pkid = p.pkid, "Dropped a redelivery of a message already committed.");
                    ledger.reacknowledged(p.pkid, Instant::now());
                    drop(ledger);
                    ack(&self.client, p.pkid);
                    return true;
                }
            }
        } else {
            None
        };
        let message = Arrived::Message(Message {
            qos1,
            topic: Arc::from(p.topic.as_str()),
            payload: p.payload,
        });
        if at_least_once {
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
