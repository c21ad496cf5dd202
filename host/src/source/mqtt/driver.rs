//! The connection thread: drives the client (keep-alive, reconnects with the shared backoff
//! policy, resubscribing when the broker lost the session) and classifies arrivals.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use rumqttc::{Client, Connection, ConnectionError, Event, Packet, Publish, QoS};

use super::ledger::{Arrival, Ledger, MessageId};
use super::{Arrived, Message, MqttError, MqttSettings, ack};
use crate::retry::Backoff;

/// The connection thread.
pub(super) struct Driver {
    pub(super) settings: Arc<MqttSettings>,
    pub(super) client: Client,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    pub(super) arrivals: Sender<Arrived>,
    pub(super) stop: Arc<AtomicBool>,
}

impl Driver {
    pub(super) fn run(self, mut connection: Connection) {
        let mut backoff = Backoff::new();
        let mut subscribed = false;
        let mut was_connected = false;
        let mut attempts = 0u32;
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
                            let _ = self.arrivals.send(Arrived::Fatal(MqttError::Subscribe(e.to_string())));
                            return;
                        }
                        subscribed = true;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    for (code, topic) in ack.return_codes.iter().zip(&self.settings.topics) {
                        if matches!(code, rumqttc::SubscribeReasonCode::Failure) {
                            let _ = self
                                .arrivals
                                .send(Arrived::Fatal(MqttError::SubscriptionRefused { topic: topic.clone() }));
                            return;
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if !self.on_publish(p) {
                        return;
                    }
                }
                // What proves PUBACKs reached the broker (see `ledger`).
                Ok(Event::Outgoing(rumqttc::Outgoing::PubAck(pkid))) => self.ledger().puback_sent(pkid),
                Ok(Event::Outgoing(rumqttc::Outgoing::Unsubscribe(pkid))) => self.ledger().marker_sent(pkid),
                Ok(Event::Incoming(Packet::UnsubAck(ack))) => self.ledger().marker_answered(ack.pkid),
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => {
                    let _ = self.arrivals.send(Arrived::Fatal(MqttError::Refused {
                        url: self.settings.url.clone(),
                        code: format!("{code:?}"),
                    }));
                    return;
                }
                Err(e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let wait = backoff.next_delay().unwrap_or(Duration::from_secs(30));
                    if !was_connected {
                        // Never connected: most likely a wrong URL or no broker. Bounded.
                        attempts += 1;
                        if attempts >= self.settings.connect_attempts {
                            let _ = self.arrivals.send(Arrived::Fatal(MqttError::CannotConnect {
                                url: self.settings.url.clone(),
                                cause: e.to_string(),
                                attempts,
                            }));
                            return;
                        }
                        tracing::warn!(url = %self.settings.url, error = %e, attempt = attempts, retry_in_ms = wait.as_millis() as u64, "Cannot connect to the MQTT broker; trying again");
                    } else {
                        // Connected before: a lost connection is retried until the run stops.
                        tracing::warn!(url = %self.settings.url, error = %e, retry_in_ms = wait.as_millis() as u64, "MQTT connection lost; reconnecting");
                    }
                    std::thread::sleep(wait);
                }
            }
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
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
                    tracing::debug!(topic = %p.topic, pkid = p.pkid, "Dropped a redelivery of a message already committed.");
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
