//! Which QoS 1 messages are waiting for their PUBACK, and which were already written: the
//! bookkeeping that turns the broker's at-least-once redelivery into exactly-once rows.
//!
//! The protocol (MQTT 3.1.1 §4.4, §4.3.2): a QoS 1 message stays the broker's until we send
//! its PUBACK; on reconnecting with a persistent session the broker sends every
//! unacknowledged message again, **with its original packet id and the DUP flag set**. A
//! packet id is reused for a new message only after its PUBACK.
//!
//! So a message is identified, while it is unacknowledged, by its packet id, and we tell a
//! redelivery from a new message by the DUP flag plus a fingerprint of topic and payload.
//! The ledger keeps:
//! - `pending`: messages read but not yet in a committed checkpoint, by chunk. Their PUBACK
//!   is sent when the checkpoint that holds them commits ([`Ledger::committed`]).
//! - `written`: messages in a committed checkpoint whose PUBACK may not have reached the
//!   broker (it was not sent yet at a crash, or the connection broke right after). This set
//!   is saved in every checkpoint ([`Ledger::persist`]), so after a crash a redelivered
//!   message that is already in the output is recognised, acknowledged again and dropped.
//!
//! An entry leaves `written` once the broker provably took its PUBACK:
//! - **A marker came back.** After the PUBACKs of a checkpoint, the source sends an
//!   UNSUBSCRIBE of a filter it never subscribed to; the broker must answer it with an
//!   UNSUBACK (§3.10.4) and reads a connection's packets in order, so the UNSUBACK proves it
//!   read every PUBACK that left before the UNSUBSCRIBE on the same connection
//!   ([`Ledger::puback_sent`], [`Ledger::marker_sent`], [`Ledger::marker_answered`]). On a
//!   steady stream this keeps the set to about one in-flight window. While a backlog drains,
//!   the answers queue behind the broker's messages and the set can reach every packet id.
//! - The broker reuses its packet id for a new message (it may only after our PUBACK).
//! - Its PUBACK was sent more than [`FORGET_AFTER`] ago on a connection that stayed up since.
//!
//! Both proofs hold only for a message **delivered on the connection the PUBACK left on**.
//! A broker need not honour a PUBACK for a message it has not sent again on the new
//! connection: mosquitto, resending a long in-flight backlog after a restart a window at a
//! time, ignores it and later sends the message again with DUP. So an entry delivered on an
//! earlier connection stays until that redelivery arrives (it is then acknowledged again,
//! on the connection that delivered it) or the broker reuses its packet id.
//!
//! A proof names the write it covers (a serial per entry), so it never removes a later
//! message written under the same packet id. A reconnect drops the markers in flight: the
//! PUBACKs before them may have been lost with the old connection.
//!
//! An answer is matched to the oldest marker in flight, so the answers must be told apart:
//! rumqttc numbers UNSUBSCRIBEs from a cycle of 100 packet ids and does not track them, so
//! an answer to a marker sent 100 markers earlier carries the id of a newer one. At most
//! [`MARKERS_IN_FLIGHT`] markers are requested at once ([`Ledger::marker_wanted`]); the
//! PUBACKs of a commit that finds the limit reached wait for the next marker. An answer
//! that matches no marker makes the ledger give markers up until the next connection.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

/// How long after its PUBACK was sent on a connection that stayed up an entry is kept.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// How often at most the written set is swept for entries past [`FORGET_AFTER`]: a sweep
/// visits the whole set, and commits come as often as every few milliseconds.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A QoS 1 message as the ledger knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageId {
    /// The broker's packet id.
    pub pkid: u16,
    /// First 8 bytes of SHA-256 over topic, a zero byte and payload.
    pub fingerprint: u64,
}

impl MessageId {
    /// The id of a message.
    pub fn of(pkid: u16, topic: &str, payload: &[u8]) -> Self {
        MessageId {
            pkid,
            fingerprint: fingerprint(topic, payload),
        }
    }
}

/// A message's fingerprint: the first 8 bytes of SHA-256 over topic, a zero byte and payload.
pub fn fingerprint(topic: &str, payload: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(topic.as_bytes());
    h.update([0]);
    h.update(payload);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// What to do with an arriving QoS 1 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A new message: read it.
    New,
    /// A redelivery of a message already written: acknowledge it again and drop it.
    AlreadyWritten,
    /// A redelivery of a message read and not yet committed: drop it (the first copy will
    /// be acknowledged when it commits).
    AlreadyPending,
}

#[derive(Debug, Clone, Copy)]
struct Written {
    fingerprint: u64,
    /// When its PUBACK was handed to the connection, and on which connection.
    acked: Option<(Instant, u64)>,
    /// The connection whose delivery of it was read (0: unknown, restored from a checkpoint).
    delivered: u64,
    /// Which write this is: a proof covers one write, not a later one under the same id.
    serial: u64,
}

/// Markers requested and not yet answered, at most. Requests replayed by rumqttc after a
/// reconnect can add as many again: still well inside its cycle of 100 packet ids.
pub const MARKERS_IN_FLIGHT: usize = 16;

/// The ledger of one MQTT source.
#[derive(Debug, Default)]
pub struct Ledger {
    pending: BTreeMap<u64, Vec<MessageId>>,
    /// Packet id → (chunk, connection it was delivered on) of the messages in `pending`.
    pending_ids: FxHashMap<u16, (u64, u64)>,
    written: FxHashMap<u16, Written>,
    /// When the written set was last swept for old entries.
    swept: Option<Instant>,
    /// The current connection's number and when it came up.
    connection: (u64, Option<Instant>),
    /// The last serial given to a written entry.
    serial: u64,
    /// PUBACKs that left on this connection since the last marker: (packet id, serial).
    unmarked: Vec<(u16, u64)>,
    /// Markers sent on this connection and not yet answered, oldest first, each with the
    /// PUBACKs that left before it.
    markers: VecDeque<(u16, Vec<(u16, u64)>)>,
    /// Markers requested from the connection and not yet sent.
    requested: usize,
    /// An answer matched no marker: none is trusted until the next connection.
    distrusted: bool,
}

impl Ledger {
    /// A ledger resuming from a checkpoint's saved `written` set (see [`Ledger::persist`]):
    /// entries apply in order, a later one replacing an earlier one under the same packet id
    /// (older checkpoints hold them sorted by packet id, one per id, which reads the same).
    pub fn restore(saved: Option<&str>) -> Result<Self, String> {
        let mut ledger = Ledger::default();
        let Some(text) = saved else { return Ok(ledger) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("the saved MQTT redelivery set is not base64: {e}"))?;
        if bytes.len() % 10 != 0 {
            return Err("the saved MQTT redelivery set has a partial entry".into());
        }
        for entry in bytes.chunks_exact(10) {
            let pkid = u16::from_le_bytes([entry[0], entry[1]]);
            let mut fp = [0u8; 8];
            fp.copy_from_slice(&entry[2..]);
            ledger.written.insert(
                pkid,
                Written {
                    fingerprint: u64::from_le_bytes(fp),
                    acked: None,
                    delivered: 0,
                    serial: 0,
                },
            );
        }
        Ok(ledger)
    }

    /// A (re)connection came up: entries acknowledged on earlier connections are kept until
    /// this one has been up for [`FORGET_AFTER`], or a marker on it covers them again.
    ///
    /// Call it only once the old connection's last events are handled: rumqttc can hold
    /// some back and hand them out after the new CONNACK (see the driver).
    pub fn connected(&mut self, now: Instant) {
        self.connection = (self.connection.0 + 1, Some(now));
        self.unmarked.clear();
        self.markers.clear();
        // Requests still queued are sent on this connection and counted again as they are;
        // those rumqttc dropped with a lost session never will be.
        self.requested = 0;
        self.distrusted = false;
    }

    /// The connection wrote the PUBACK for packet id `pkid`.
    pub fn puback_sent(&mut self, pkid: u16, now: Instant) {
        let connection = self.connection.0;
        if let Some(w) = self.written.get_mut(&pkid) {
            // What [`FORGET_AFTER`] counts from: the PUBACK left on this connection.
            w.acked = Some((now, connection));
            if w.delivered == connection && !self.distrusted {
                self.unmarked.push((pkid, w.serial));
            }
        }
    }

    /// Whether to request a marker now (see [`MARKERS_IN_FLIGHT`]); if so, it is counted
    /// as requested until the connection writes it.
    pub fn marker_wanted(&mut self) -> bool {
        if self.distrusted || self.requested + self.markers.len() >= MARKERS_IN_FLIGHT {
            return false;
        }
        self.requested += 1;
        true
    }

    /// The connection wrote a marker (an UNSUBSCRIBE) with packet id `pkid`: it covers the
    /// PUBACKs written since the last one.
    pub fn marker_sent(&mut self, pkid: u16) {
        self.requested = self.requested.saturating_sub(1);
        if self.distrusted {
            return;
        }
        self.markers.push_back((pkid, std::mem::take(&mut self.unmarked)));
    }

    /// The broker answered the marker with packet id `pkid`: every PUBACK written before it
    /// on this connection reached the broker. Answers come in order; one that does not
    /// match the oldest marker proves nothing, and no marker is trusted again on this
    /// connection (its PUBACKs are then forgotten by the other rules).
    pub fn marker_answered(&mut self, pkid: u16) {
        if self.distrusted {
            return;
        }
        match self.markers.pop_front() {
            Some((sent, acks)) if sent == pkid => {
                for (pkid, serial) in acks {
                    if self.written.get(&pkid).is_some_and(|w| w.serial == serial) {
                        self.written.remove(&pkid);
                    }
                }
            }
            _ => {
                tracing::debug!(
                    pkid,
                    "An UNSUBACK matched no ack marker; markers are given up until the next connection."
                );
                self.distrusted = true;
                self.markers.clear();
                self.unmarked.clear();
            }
        }
    }

    /// Classify an arriving QoS 1 message with packet id `pkid`; `dup` holds its fingerprint
    /// when it came flagged DUP. Only a redelivery needs one here: a new message's is taken
    /// when its chunk is cut ([`Ledger::read`]), off the connection thread.
    pub fn arrive(&mut self, pkid: u16, dup: Option<u64>) -> Arrival {
        if let Some(fingerprint) = dup {
            if self.written.get(&pkid).is_some_and(|w| w.fingerprint == fingerprint) {
                return Arrival::AlreadyWritten;
            }
            if let Some((_, delivered)) = self.pending_ids.get_mut(&pkid) {
                // Its PUBACK, sent at the commit, now answers this delivery.
                *delivered = self.connection.0;
                return Arrival::AlreadyPending;
            }
        } else {
            // The broker reuses a packet id only after our PUBACK for it arrived.
            self.written.remove(&pkid);
        }
        // Pending from now on (its chunk is not cut yet): a copy arriving meanwhile is caught.
        self.pending_ids.insert(pkid, (u64::MAX, self.connection.0));
        Arrival::New
    }

    /// Messages read into chunk `seq`.
    pub fn read(&mut self, seq: u64, ids: Vec<MessageId>) {
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            let delivered = self.pending_ids.get(&id.pkid).map_or(self.connection.0, |p| p.1);
            self.pending_ids.insert(id.pkid, (seq, delivered));
        }
        self.pending.entry(seq).or_default().extend(ids);
    }

    /// The set to save with a checkpoint that covers chunks up to `seq`: what is written
    /// already plus what that checkpoint writes. Base64 of 10-byte entries (packet id and
    /// fingerprint, little-endian) in the order they apply: a later entry replaces an
    /// earlier one under the same packet id ([`Ledger::restore`] reads them so). `None`
    /// when empty.
    ///
    /// Built in one pass, without sorting: while the broker's answers to the markers lag,
    /// the written set can hold tens of thousands of entries, and this runs at every
    /// checkpoint.
    pub fn persist(&self, seq: u64) -> Option<String> {
        let covered = || self.pending.range(..=seq).flat_map(|(_, ids)| ids);
        let count = self.written.len() + covered().count();
        if count == 0 {
            return None;
        }
        let mut bytes = Vec::with_capacity(count * 10);
        let mut push = |pkid: u16, fingerprint: u64| {
            bytes.extend_from_slice(&pkid.to_le_bytes());
            bytes.extend_from_slice(&fingerprint.to_le_bytes());
        };
        for (pkid, w) in &self.written {
            // Left out when this checkpoint writes its packet id again: that entry follows
            // and wins. (Only an id's newest chunk is known here: when it is not covered,
            // the old entry stays and a covered one still follows it.)
            let superseded = self.pending_ids.get(pkid).is_some_and(|&(chunk, _)| chunk <= seq);
            if !superseded {
                push(*pkid, w.fingerprint);
            }
        }
        for id in covered() {
            push(id.pkid, id.fingerprint);
        }
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The checkpoint covering chunks up to `seq` committed: their messages are written, and
    /// returned so that the caller sends their PUBACKs.
    pub fn committed(&mut self, seq: u64, now: Instant) -> Vec<MessageId> {
        let later = self.pending.split_off(&(seq + 1));
        let done = std::mem::replace(&mut self.pending, later);
        let mut acks = Vec::new();
        for id in done.into_values().flatten() {
            let delivered = self.pending_ids.remove(&id.pkid).map_or(0, |p| p.1);
            self.serial += 1;
            self.written.insert(
                id.pkid,
                Written {
                    fingerprint: id.fingerprint,
                    acked: Some((now, self.connection.0)),
                    delivered,
                    serial: self.serial,
                },
            );
            acks.push(id);
        }
        self.forget_old(now);
        acks
    }

    /// A redelivered, already written message was acknowledged again.
    pub fn reacknowledged(&mut self, pkid: u16, now: Instant) {
        if let Some(w) = self.written.get_mut(&pkid) {
            w.acked = Some((now, self.connection.0));
            w.delivered = self.connection.0;
        }
    }

    fn forget_old(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        self.swept = Some(now);
        let current = self.connection.0;
        // A PUBACK that left long ago on the connection that delivered the message, which is
        // still up: it reached the broker. Entries delivered on earlier connections wait for
        // their redelivery or for their packet id to be reused (see above).
        self.written.retain(|_, w| {
            w.delivered != current
                || !w
                    .acked
                    .is_some_and(|(at, conn)| conn == current && now.duration_since(at) >= FORGET_AFTER)
        });
    }

    /// Messages read and not yet committed.
    pub fn pending(&self) -> usize {
        self.pending_ids.len()
    }

    /// Messages remembered as written.
    pub fn remembered(&self) -> usize {
        self.written.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrive(l: &mut Ledger, id: MessageId, dup: bool) -> Arrival {
        l.arrive(id.pkid, dup.then_some(id.fingerprint))
    }

    fn id(pkid: u16, payload: &str) -> MessageId {
        MessageId::of(pkid, "streaming-data/d1", payload.as_bytes())
    }

    #[test]
    fn a_redelivery_of_a_written_message_is_dropped_after_a_restart() {
        let t = Instant::now();
        let mut before = Ledger::default();
        before.connected(t);
        assert_eq!(arrive(&mut before, id(1, "a"), false), Arrival::New);
        assert_eq!(arrive(&mut before, id(2, "b"), false), Arrival::New);
        before.read(0, vec![id(1, "a"), id(2, "b")]);
        assert_eq!(arrive(&mut before, id(3, "c"), false), Arrival::New);
        before.read(1, vec![id(3, "c")]);
        // The checkpoint covering chunk 0 is written; then the process dies before any
        // PUBACK leaves.
        let saved = before.persist(0);
        let mut after = Ledger::restore(saved.as_deref()).expect("restore");
        after.connected(t);
        assert_eq!(arrive(&mut after, id(1, "a"), true), Arrival::AlreadyWritten);
        assert_eq!(arrive(&mut after, id(2, "b"), true), Arrival::AlreadyWritten);
        // Chunk 1 was never committed: it is read again.
        assert_eq!(arrive(&mut after, id(3, "c"), true), Arrival::New);
    }

    #[test]
    fn a_new_message_reusing_a_packet_id_is_not_taken_for_a_redelivery() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        arrive(&mut l, id(7, "a"), false);
        l.read(0, vec![id(7, "a")]);
        assert_eq!(l.committed(0, t), vec![id(7, "a")]);
        // Same packet id, same bytes, but not DUP: a new message (e.g. a heartbeat).
        assert_eq!(arrive(&mut l, id(7, "a"), false), Arrival::New);
        assert_eq!(l.remembered(), 0);
        // A DUP with another payload under a remembered id is new too.
        l.read(1, vec![id(7, "a")]);
        l.committed(1, t);
        assert_eq!(arrive(&mut l, id(7, "other"), true), Arrival::New);
    }

    #[test]
    fn a_redelivery_of_a_pending_message_is_dropped_once() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        arrive(&mut l, id(1, "a"), false);
        l.read(0, vec![id(1, "a")]);
        // The connection broke; the broker sends it again before our checkpoint.
        l.connected(t);
        assert_eq!(arrive(&mut l, id(1, "a"), true), Arrival::AlreadyPending);
        assert_eq!(l.pending(), 1);
        assert_eq!(l.committed(0, t).len(), 1);
        assert_eq!(l.pending(), 0);
    }

    #[test]
    fn persist_covers_exactly_the_checkpointed_chunks() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.read(0, vec![id(1, "a")]);
        l.read(1, vec![id(2, "b")]);
        let restored = Ledger::restore(l.persist(0).as_deref()).expect("restore");
        assert_eq!(restored.remembered(), 1);
        assert!(Ledger::default().persist(5).is_none());
        l.committed(1, t);
        assert_eq!(Ledger::restore(l.persist(1).as_deref()).expect("r").remembered(), 2);
        assert!(Ledger::restore(Some("not base64!")).is_err());
        assert!(Ledger::restore(Some("AAAA")).is_err());
    }

    /// Commit `ids` as chunk `seq` and write their PUBACKs.
    fn commit_and_ack(l: &mut Ledger, seq: u64, ids: &[MessageId], t: Instant) {
        l.read(seq, ids.to_vec());
        for id in l.committed(seq, t) {
            l.puback_sent(id.pkid, t);
        }
    }

    #[test]
    fn an_answered_marker_forgets_exactly_the_pubacks_written_before_it() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        commit_and_ack(&mut l, 0, &[id(1, "a"), id(2, "b")], t);
        l.marker_sent(40);
        commit_and_ack(&mut l, 1, &[id(3, "c")], t);
        // Committed, PUBACK not yet written: no marker can cover it.
        l.read(2, vec![id(4, "d")]);
        l.committed(2, t);
        assert_eq!(l.remembered(), 4);
        l.marker_answered(40);
        assert_eq!(l.remembered(), 2, "ids 3 and 4 are still in doubt");
        let restored = Ledger::restore(l.persist(2).as_deref()).expect("restore");
        let mut after = restored;
        after.connected(t);
        assert_eq!(arrive(&mut after, id(3, "c"), true), Arrival::AlreadyWritten);
        assert_eq!(arrive(&mut after, id(4, "d"), true), Arrival::AlreadyWritten);
        assert_eq!(arrive(&mut after, id(1, "a"), true), Arrival::New);
        // The next marker covers id 3 only.
        l.marker_sent(41);
        l.marker_answered(41);
        assert_eq!(l.remembered(), 1);
    }

    #[test]
    fn a_marker_never_forgets_a_later_message_under_the_same_packet_id() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        commit_and_ack(&mut l, 0, &[id(7, "a")], t);
        l.marker_sent(1);
        // The broker got the PUBACK and reused id 7 (same bytes, e.g. a heartbeat) before
        // the marker's answer came back; that message is committed, its PUBACK not sent.
        assert_eq!(arrive(&mut l, id(7, "a"), false), Arrival::New);
        l.read(1, vec![id(7, "a")]);
        l.committed(1, t);
        l.marker_answered(1);
        assert_eq!(l.remembered(), 1, "the second message under id 7 is still in doubt");
    }

    #[test]
    fn markers_prove_nothing_across_a_reconnect_or_out_of_order() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        commit_and_ack(&mut l, 0, &[id(1, "a")], t);
        l.marker_sent(1);
        // The connection broke: the PUBACK may have been lost with it.
        l.connected(t);
        l.marker_answered(1);
        assert_eq!(l.remembered(), 1);
        commit_and_ack(&mut l, 1, &[id(2, "b")], t);
        l.marker_sent(2);
        l.marker_sent(3);
        l.marker_answered(3);
        l.marker_answered(2);
        assert_eq!(l.remembered(), 2, "an answer out of order gives the markers up");
    }

    #[test]
    fn the_saved_set_holds_one_entry_per_id_and_the_newest_write_of_an_id_wins() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        for (pkid, payload) in [(9, "old"), (3, "c"), (700, "x")] {
            arrive(&mut l, id(pkid, payload), false);
        }
        l.read(0, vec![id(9, "old"), id(3, "c"), id(700, "x")]);
        l.committed(0, t);
        // Packet id 9 comes back with another message flagged DUP (a new message whose first
        // delivery was lost with a connection): written keeps the old entry meanwhile.
        assert_eq!(arrive(&mut l, id(9, "new"), true), Arrival::New);
        l.read(1, vec![id(9, "new")]);
        arrive(&mut l, id(1, "a"), false);
        l.read(2, vec![id(1, "a")]);
        let saved = l.persist(1).expect("entries");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&saved)
            .expect("base64");
        let mut entries: Vec<(u16, u64)> = bytes
            .chunks_exact(10)
            .map(|e| {
                let mut fp = [0u8; 8];
                fp.copy_from_slice(&e[2..]);
                (u16::from_le_bytes([e[0], e[1]]), u64::from_le_bytes(fp))
            })
            .collect();
        entries.sort_unstable();
        let expected = [id(3, "c"), id(9, "new"), id(700, "x")].map(|m| (m.pkid, m.fingerprint));
        assert_eq!(
            entries, expected,
            "one entry per id, the newest write, chunk 2 not covered"
        );
        let mut after = Ledger::restore(Some(&saved)).expect("restore");
        after.connected(t);
        assert_eq!(arrive(&mut after, id(9, "new"), true), Arrival::AlreadyWritten);
        assert_eq!(arrive(&mut after, id(3, "c"), true), Arrival::AlreadyWritten);
        assert_eq!(arrive(&mut after, id(1, "a"), true), Arrival::New);
    }

    #[test]
    fn a_saved_entry_replaces_an_earlier_one_under_the_same_id() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        l.read(0, vec![id(5, "old")]);
        l.committed(0, t);
        // Another message under id 5 in chunk 1, and (as the ledger is told) in chunk 2: the
        // checkpoint covering chunk 1, not 2, saves the old entry and chunk 1's after it.
        assert_eq!(arrive(&mut l, id(5, "new"), true), Arrival::New);
        l.read(1, vec![id(5, "new")]);
        l.read(2, vec![id(5, "newer")]);
        let saved = l.persist(1).expect("entries");
        let mut after = Ledger::restore(Some(&saved)).expect("restore");
        after.connected(t);
        assert_eq!(after.remembered(), 1);
        assert_eq!(arrive(&mut after, id(5, "new"), true), Arrival::AlreadyWritten);
        let mut again = Ledger::restore(Some(&saved)).expect("restore");
        again.connected(t);
        assert_eq!(arrive(&mut again, id(5, "old"), true), Arrival::New);
    }

    #[test]
    fn acknowledged_entries_are_forgotten_once_a_connection_stayed_up() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        l.read(0, vec![id(1, "a")]);
        l.committed(0, t);
        assert_eq!(l.remembered(), 1);
        // Not yet: the connection has not been up long enough.
        l.committed(0, t + FORGET_AFTER / 2);
        assert_eq!(l.remembered(), 1);
        l.committed(0, t + FORGET_AFTER * 2);
        assert_eq!(l.remembered(), 0);
        // Delivered on a connection that broke: kept however long the next one stays up,
        // until the broker sends it again.
        l.read(1, vec![id(2, "b")]);
        l.committed(1, t + FORGET_AFTER * 2);
        l.connected(t + FORGET_AFTER * 3);
        l.committed(1, t + FORGET_AFTER * 10);
        assert_eq!(l.remembered(), 1);
        assert_eq!(arrive(&mut l, id(2, "b"), true), Arrival::AlreadyWritten);
        l.reacknowledged(2, t + FORGET_AFTER * 10);
        l.puback_sent(2, t + FORGET_AFTER * 10);
        l.committed(1, t + FORGET_AFTER * 12);
        assert_eq!(l.remembered(), 0);
    }

    #[test]
    fn a_puback_for_a_delivery_on_an_earlier_connection_proves_nothing() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        assert_eq!(arrive(&mut l, id(5, "a"), false), Arrival::New);
        l.read(0, vec![id(5, "a")]);
        // The connection breaks before the commit; its PUBACK leaves on the next one, which
        // the broker may ignore until it has sent the message again (mosquitto does).
        l.connected(t);
        assert_eq!(l.committed(0, t), vec![id(5, "a")]);
        l.puback_sent(5, t);
        assert!(l.marker_wanted());
        l.marker_sent(1);
        l.marker_answered(1);
        assert_eq!(l.remembered(), 1, "the broker may still send it again");
        assert_eq!(arrive(&mut l, id(5, "a"), true), Arrival::AlreadyWritten);
        l.reacknowledged(5, t);
        l.puback_sent(5, t);
        assert!(l.marker_wanted());
        l.marker_sent(2);
        l.marker_answered(2);
        assert_eq!(l.remembered(), 0);
    }

    #[test]
    fn a_pending_message_sent_again_is_answered_by_its_puback_on_the_new_connection() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        arrive(&mut l, id(5, "a"), false);
        l.read(0, vec![id(5, "a")]);
        l.connected(t);
        assert_eq!(arrive(&mut l, id(5, "a"), true), Arrival::AlreadyPending);
        l.committed(0, t);
        l.puback_sent(5, t);
        l.marker_sent(1);
        l.marker_answered(1);
        assert_eq!(l.remembered(), 0);
    }

    #[test]
    fn markers_in_flight_are_capped_and_an_unmatched_answer_ends_trust_until_reconnecting() {
        let t = Instant::now();
        let mut l = Ledger::default();
        l.connected(t);
        for _ in 0..MARKERS_IN_FLIGHT {
            assert!(l.marker_wanted());
        }
        assert!(!l.marker_wanted(), "the limit counts requests not yet sent");
        for pkid in 1..=MARKERS_IN_FLIGHT as u16 {
            l.marker_sent(pkid);
        }
        assert!(!l.marker_wanted(), "and markers sent, not yet answered");
        l.marker_answered(1);
        assert!(l.marker_wanted());
        // An answer to a marker that is not the oldest (an id rumqttc reused).
        l.marker_answered(7);
        assert!(!l.marker_wanted());
        commit_and_ack(&mut l, 0, &[id(9, "a")], t);
        l.marker_sent(30);
        l.marker_answered(30);
        assert_eq!(l.remembered(), 1, "no proof until the next connection");
        l.connected(t);
        assert!(l.marker_wanted());
    }
}
