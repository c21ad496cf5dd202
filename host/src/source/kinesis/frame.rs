//! Stream records → the framed records of chunks, natively: KPL aggregates unpacked into
//! their user records (each keeps its sequence, sub-sequence and own partition key), then
//! each user record's data read as the source's `decode` says. Pure.
//!
//! A piece holds at most `batch_rows` rows and may end inside an aggregate: its position is
//! then `(sequence, last sub-sequence read)` and a resumed reader skips what was read
//! (KPL-04). A record that cannot be read (a corrupt aggregate, a bad CloudWatch Logs
//! envelope, text that is not UTF-8) keeps its place as an empty record and goes to the
//! dead letters whole, with the reason and its sequence number; the shard goes on.

use std::sync::Arc;

use super::StreamRecord;
use super::cloudwatch::{self, Envelope};
use super::kpl::{self, Unpacked};
use super::sequence::compare_sequence;
use crate::config::KinesisDecode;
use crate::record::{BadRecord, RecordOrigin};
use crate::source::position::PartitionPosition;

/// Dead letters keep at most this much of a record's data.
const MAX_RAW: usize = 1 << 20;

/// A shard's reading state between responses: the part of an aggregate already read.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    /// Skip sub-records up to this one of this sequence number (a resumed aggregate).
    skip: Option<(String, u64)>,
    /// The last sequence number the position stood at.
    last: Option<String>,
}

impl Cursor {
    /// A cursor that skips sub-records `..=k` of sequence `s` when given `Some((s, k))`,
    /// for a shard whose position stands at sequence `last`.
    pub fn new(skip: Option<(String, u64)>, last: Option<String>) -> Self {
        Cursor { skip, last }
    }

    /// Whether an enhanced fan-out continuation may become the position: only past where
    /// the position stands, and not while part of an aggregate is still to be skipped (a
    /// continuation behind it would forget the sub-records already read).
    pub fn accepts(&self, continuation: &str) -> bool {
        self.skip.is_none()
            && self
                .last
                .as_deref()
                .is_none_or(|l| compare_sequence(continuation, l) == std::cmp::Ordering::Greater)
    }

    /// The position moved to `sequence`.
    pub fn moved(&mut self, sequence: &str) {
        self.last = Some(sequence.to_owned());
    }
}

/// Framed records of one chunk.
#[derive(Debug, Default)]
pub struct Piece {
    /// The records, each followed by `\n`.
    pub data: Vec<u8>,
    /// The end of each record in `data`.
    pub ends: Vec<usize>,
    /// Where each record came from.
    pub origins: Vec<RecordOrigin>,
    /// Records that could not be read.
    pub rejected: Vec<BadRecord>,
    /// The shard's position after the piece.
    pub position: Option<PartitionPosition>,
    /// Bytes of stream data the piece covers.
    pub bytes: u64,
}

impl Piece {
    /// A piece with no records that only moves the position.
    pub fn at(position: PartitionPosition) -> Self {
        Piece {
            position: Some(position),
            ..Piece::default()
        }
    }

    fn rows(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, row: &[u8], origin: RecordOrigin) {
        self.data.extend_from_slice(row);
        self.data.push(b'\n');
        self.ends.push(self.data.len());
        self.origins.push(origin);
    }

    fn reject(&mut self, raw: &[u8], origin: RecordOrigin, reason: String) {
        self.rejected.push(BadRecord {
            origin: origin.clone(),
            index: self.ends.len(),
            raw: raw[..raw.len().min(MAX_RAW)].to_vec(),
            reason,
        });
        // An empty record keeps its place; the decoder skips it.
        self.push(b"", origin);
    }
}

/// How a shard's records become rows.
#[derive(Debug, Clone)]
pub struct Framer {
    /// What the data holds.
    pub decode: KinesisDecode,
    /// Rows per piece at most.
    pub batch_rows: usize,
    /// The shard.
    pub shard: Arc<str>,
}

/// One user record of a stream record.
struct Unit<'a> {
    partition_key: &'a str,
    data: &'a [u8],
    sub_sequence: Option<u64>,
}

impl Framer {
    /// Frame one response's records, in order, into pieces of at most `batch_rows` rows.
    pub fn frame(&self, cursor: &mut Cursor, records: &[StreamRecord]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let mut piece = Piece::default();
        for record in records {
            let skip_through = match cursor.skip.take() {
                Some((s, k)) => match compare_sequence(&record.sequence, &s) {
                    std::cmp::Ordering::Less => {
                        // Before the resumed record (an AT iterator never gives these).
                        cursor.skip = Some((s, k));
                        continue;
                    }
                    std::cmp::Ordering::Equal => Some(k),
                    std::cmp::Ordering::Greater => None,
                },
                None => None,
            };
            cursor.moved(&record.sequence);
            let sequence: Arc<str> = Arc::from(record.sequence.as_str());
            let arrival_micros = record.arrival_millis.map(|ms| ms.saturating_mul(1000));
            let origin = |partition_key: &str, sub_sequence: Option<u64>| RecordOrigin::Shard {
                shard: self.shard.clone(),
                sequence: sequence.clone(),
                sub_sequence,
                partition_key: Arc::from(partition_key),
                arrival_micros,
            };
            piece.bytes += record.data.len() as u64;
            let units: Vec<Unit<'_>> = match kpl::deaggregate(&record.data) {
                Ok(Unpacked::Plain) => vec![Unit {
                    partition_key: &record.partition_key,
                    data: &record.data,
                    sub_sequence: None,
                }],
                Ok(Unpacked::Aggregate(users)) => users
                    .iter()
                    .map(|u| Unit {
                        partition_key: u.partition_key,
                        data: u.data,
                        sub_sequence: Some(u.sub_sequence),
                    })
                    .collect(),
                Err(e) => {
                    if skip_through.is_none() {
                        piece.reject(
                            &record.data,
                            origin(&record.partition_key, None),
                            format!("{e} (sequence {})", record.sequence),
                        );
                    }
                    Vec::new()
                }
            };
            let last = units.len().saturating_sub(1);
            for (i, unit) in units.iter().enumerate() {
                // A plain record is an aggregate of one with sub-sequence 0 (KPL-04).
                if skip_through.is_some_and(|k| unit.sub_sequence.unwrap_or(0) <= k) {
                    continue;
                }
                self.rows_of(unit, &mut piece, origin(unit.partition_key, unit.sub_sequence));
                if piece.rows() >= self.batch_rows && i < last {
                    piece.position = Some(PartitionPosition::Shard {
                        sequence: record.sequence.clone(),
                        sub_sequence: unit.sub_sequence,
                        ended: false,
                        at_ms: None,
                    });
                    pieces.push(std::mem::take(&mut piece));
                }
            }
            piece.position = Some(PartitionPosition::Shard {
                sequence: record.sequence.clone(),
                sub_sequence: None,
                ended: false,
                at_ms: None,
            });
            if piece.rows() >= self.batch_rows {
                pieces.push(std::mem::take(&mut piece));
            }
        }
        if piece.position.is_some() {
            pieces.push(piece);
        }
        pieces
    }

    /// The rows of one user record.
    fn rows_of(&self, unit: &Unit<'_>, piece: &mut Piece, origin: RecordOrigin) {
        match self.decode {
            KinesisDecode::Json => piece.push(unit.data, origin),
            KinesisDecode::Lines => match std::str::from_utf8(unit.data) {
                Ok(text) => {
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        let mut row = Vec::with_capacity(line.len() + 12);
                        row.extend_from_slice(b"{\"line\":");
                        // Writing a string into a Vec cannot fail.
                        serde_json::to_writer(&mut row, line).ok();
                        row.push(b'}');
                        piece.push(&row, origin.clone());
                    }
                }
                Err(e) => piece.reject(unit.data, origin, format!("text is not UTF-8: {e}")),
            },
            KinesisDecode::CloudwatchLogs => match cloudwatch::unpack(unit.data) {
                Ok(Envelope::Data(rows)) => {
                    for row in rows {
                        piece.push(&row, origin.clone());
                    }
                }
                // CWL-03: no rows, but the record counts as read.
                Ok(Envelope::Control) => {}
                Err(e) => piece.reject(unit.data, origin, e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: &str, key: &str, data: &[u8]) -> StreamRecord {
        StreamRecord {
            sequence: sequence.into(),
            partition_key: key.into(),
            data: data.to_vec(),
            arrival_millis: Some(1_000),
        }
    }

    fn framer(decode: KinesisDecode, batch_rows: usize) -> Framer {
        Framer {
            decode,
            batch_rows,
            shard: Arc::from("shardId-000000000001"),
        }
    }

    fn rows(p: &Piece) -> Vec<String> {
        let mut out = Vec::new();
        let mut start = 0;
        for &end in &p.ends {
            out.push(String::from_utf8_lossy(&p.data[start..end - 1]).into_owned());
            start = end;
        }
        out
    }

    fn position(p: &Piece) -> (String, Option<u64>) {
        match p.position.clone() {
            Some(PartitionPosition::Shard {
                sequence, sub_sequence, ..
            }) => (sequence, sub_sequence),
            other => panic!("shard position expected, found {other:?}"),
        }
    }

    /// KPL-V3 from the spec: keys pk-1 and pk-2, data "hello" and "world".
    const KPL_V3: &str = "84mawgoEcGstMQoEcGstMhoJCAAaBWhlbGxvGgkIARoFd29ybGSNZ8RuSQxj0ecIMIQK6nPz";

    fn v3() -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(KPL_V3)
            .expect("base64")
    }

    #[test]
    fn kpl_02_user_records_keep_their_own_key_and_sub_sequence() {
        let f = framer(KinesisDecode::Lines, 100);
        let pieces = f.frame(&mut Cursor::default(), &[record("10", "outer", &v3())]);
        assert_eq!(pieces.len(), 1);
        assert_eq!(rows(&pieces[0]), [r#"{"line":"hello"}"#, r#"{"line":"world"}"#]);
        let keys: Vec<(String, Option<u64>)> = pieces[0]
            .origins
            .iter()
            .map(|o| match o {
                RecordOrigin::Shard {
                    partition_key,
                    sub_sequence,
                    ..
                } => (partition_key.to_string(), *sub_sequence),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(keys, [("pk-1".into(), Some(0)), ("pk-2".into(), Some(1))]);
        assert_eq!(
            position(&pieces[0]),
            ("10".into(), None),
            "the whole aggregate was read"
        );
    }

    #[test]
    fn kpl_04_a_piece_ending_inside_an_aggregate_says_which_sub_record_it_read_last() {
        let f = framer(KinesisDecode::Lines, 1);
        let pieces = f.frame(
            &mut Cursor::default(),
            &[record("10", "outer", &v3()), record("11", "k", b"x")],
        );
        let positions: Vec<_> = pieces.iter().map(position).collect();
        assert_eq!(
            positions,
            [("10".into(), Some(0)), ("10".into(), None), ("11".into(), None)]
        );
    }

    #[test]
    fn kpl_04_a_resumed_aggregate_skips_the_sub_records_already_read() {
        let f = framer(KinesisDecode::Lines, 100);
        let mut cursor = Cursor::new(Some(("10".into(), 0)), None);
        let pieces = f.frame(&mut cursor, &[record("10", "outer", &v3()), record("11", "k", b"x")]);
        assert_eq!(rows(&pieces[0]), [r#"{"line":"world"}"#, r#"{"line":"x"}"#]);
        // Checkpoint (S, last sub-record): nothing of S again; a plain record (S, 0): nothing.
        let mut cursor = Cursor::new(Some(("10".into(), 1)), None);
        let pieces = f.frame(&mut cursor, &[record("10", "outer", &v3())]);
        assert!(rows(&pieces[0]).is_empty());
        let mut cursor = Cursor::new(Some(("11".into(), 0)), None);
        let pieces = f.frame(&mut cursor, &[record("11", "k", b"x"), record("12", "k", b"y")]);
        assert_eq!(rows(&pieces[0]), [r#"{"line":"y"}"#]);
    }

    #[test]
    fn a_corrupt_aggregate_is_one_dead_letter_with_its_sequence_and_the_shard_goes_on() {
        let mut bad = v3();
        let n = bad.len();
        bad[n - 1] ^= 1;
        let f = framer(KinesisDecode::Json, 100);
        let pieces = f.frame(
            &mut Cursor::default(),
            &[record("7", "k", &bad), record("8", "k", b"{\"a\":1}")],
        );
        let p = &pieces[0];
        assert_eq!(rows(p), ["", r#"{"a":1}"#]);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].raw, bad, "the whole record");
        assert!(p.rejected[0].reason.contains("sequence 7"), "{}", p.rejected[0].reason);
        assert_eq!(position(p), ("8".into(), None));
    }

    #[test]
    fn cwl_03_a_control_message_gives_no_row_but_moves_the_position() {
        use base64::Engine;
        let control = base64::engine::general_purpose::STANDARD
            .decode("H4sIAAAAAAAAADWOTQuCQBRF/8ow6wj6ENRdhLXIClJoERKTvsZHOiPzxiLE/96YtTzcy72n4zUQCQnpuwEe8vXxkJ6O8XUfJclqG/EJ1y8FZkgq3RYvYfMy1pJcUGm5NbptXDZSYg2IekRqb5QbbCxqtcHKgiEeXrJvL3qCsgN2HIuxbtFpWFG7sdky8L1ZECwXc9+b/PUGgXPMfnrspxeydQn5A5VkJYjKlkzfWeGWUInhme1QASEx+qpNeZ/1H1PFPn3yAAAA")
            .expect("base64");
        let f = framer(KinesisDecode::CloudwatchLogs, 100);
        let pieces = f.frame(&mut Cursor::default(), &[record("5", "k", &control)]);
        assert_eq!(pieces.len(), 1);
        assert!(rows(&pieces[0]).is_empty() && pieces[0].rejected.is_empty());
        assert_eq!(position(&pieces[0]), ("5".into(), None));
    }

    #[test]
    fn lines_that_are_not_utf8_are_a_dead_letter() {
        let f = framer(KinesisDecode::Lines, 100);
        let pieces = f.frame(&mut Cursor::default(), &[record("1", "k", b"ok\n\xff\xfe")]);
        assert_eq!(pieces[0].rejected.len(), 1);
        assert!(pieces[0].rejected[0].reason.contains("UTF-8"));
    }

    #[test]
    fn kds_12_arrival_times_need_not_be_monotonic() {
        let f = framer(KinesisDecode::Json, 100);
        let mut early = record("2", "k", b"{}");
        early.arrival_millis = Some(500);
        let pieces = f.frame(&mut Cursor::default(), &[record("1", "k", b"{}"), early]);
        assert_eq!(rows(&pieces[0]).len(), 2, "both kept, in stream order");
    }
}
