//! PUBACKs and ack markers written by the connection thread itself, many per flush.
//!
//! rumqttc writes and flushes every request on its own: a checkpoint's thousand PUBACKs
//! were a thousand `writev` calls (about 40% of the connection thread in a profile of a
//! backlog drain) and as many small packets for the broker to read. So the writer queues
//! them here and hands rumqttc only the last one, which wakes the connection thread; after
//! each event the thread writes what is queued into the connection's buffer and flushes it
//! once ([`Outbox::write`]).
//!
//! Order: a commit's marker is queued after its PUBACKs and written after them. The PUBACK
//! handed to rumqttc may go out before or after the queue; either is sound, because the
//! ledger decides what a marker covers from the events rumqttc records in the order the
//! packets were written (ours pass through the same [`rumqttc::MqttState`]).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{EventLoop, PubAck, Request, StateError, Unsubscribe};

/// What the writer queued for the connection thread.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pubacks: Vec<u16>,
    /// Markers to write after the PUBACKs: one per commit that asked for one, so that each
    /// is counted as sent by the ledger.
    markers: usize,
}

impl Outbox {
    /// Queue `pubacks`, then `markers` markers.
    pub(super) fn push(&mut self, pubacks: impl IntoIterator<Item = u16>, markers: usize) {
        self.pubacks.extend(pubacks);
        self.markers += markers;
    }

    /// Write what `outbox` holds to the connection, if it is up, and flush once. A failed
    /// write is left to the next poll, which finds the connection broken: the broker sends
    /// the unacknowledged messages again and the ledger sorts them out.
    pub(super) fn write(
        outbox: &Mutex<Outbox>,
        runtime: &tokio::runtime::Runtime,
        eventloop: &mut EventLoop,
        marker: &str,
    ) {
        let limit = Duration::from_secs(eventloop.network_options.connection_timeout());
        let Some(network) = eventloop.network.as_mut() else {
            return; // written once connected again
        };
        let (pubacks, markers) = {
            let mut o = outbox.lock().unwrap_or_else(PoisonError::into_inner);
            if o.pubacks.is_empty() && o.markers == 0 {
                return;
            }
            (std::mem::take(&mut o.pubacks), std::mem::take(&mut o.markers))
        };
        let state = &mut eventloop.state;
        let requests = pubacks
            .into_iter()
            .map(|pkid| Request::PubAck(PubAck::new(pkid)))
            .chain((0..markers).map(|_| Request::Unsubscribe(Unsubscribe::new(marker))));
        let written: Result<(), StateError> = runtime.block_on(async {
            for request in requests {
                // Records the outgoing event, as rumqttc does for its own writes.
                if let Some(packet) = state.handle_outgoing_packet(request)? {
                    network.write(packet).await?;
                }
            }
            match tokio::time::timeout(limit, network.flush()).await {
                Ok(flushed) => flushed,
                Err(_) => Err(StateError::Io(std::io::Error::from(std::io::ErrorKind::TimedOut))),
            }
        });
        if let Err(e) = written {
            tracing::debug!(error = %e, "Writing the queued PUBACKs failed; the connection will be renewed.");
        }
    }
}
