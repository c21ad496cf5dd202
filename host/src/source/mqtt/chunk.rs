//! Cutting arrived messages into a chunk: one record per message, its origin, the refused
//! ones as dead letters.

use std::sync::Arc;

use super::ledger::{MessageId, fingerprint};
use super::{Arrived, MqttSettings};
use crate::record::{BadRecord, Chunk, Origins, RecordOrigin, SourceSpan};
use crate::source::SourceError;

/// Collects one chunk's messages as NDJSON lines.
pub(super) struct ChunkBuilder<'a> {
    settings: &'a MqttSettings,
    chunk: Chunk,
    origins: Vec<RecordOrigin>,
    broker: Arc<str>,
    ids: Vec<MessageId>,
    pub(super) count: usize,
}

impl<'a> ChunkBuilder<'a> {
    pub(super) fn new(settings: &'a MqttSettings) -> Self {
        ChunkBuilder {
            settings,
            chunk: Chunk::default(),
            origins: Vec::new(),
            broker: Arc::from(settings.url.as_str()),
            ids: Vec::new(),
            count: 0,
        }
    }

    pub(super) fn push(&mut self, arrived: Arrived) -> Result<(), SourceError> {
        let m = match arrived {
            Arrived::Message(m) => m,
            Arrived::Fatal(e) => return Err(SourceError::Mqtt(e)),
        };
        let index = self.count;
        self.count += 1;
        if let Some((pkid, taken)) = m.qos1 {
            let fingerprint = taken.unwrap_or_else(|| fingerprint(&m.topic, &m.payload));
            self.ids.push(MessageId { pkid, fingerprint });
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

    pub(super) fn finish(self, seq: u64, label: Arc<str>) -> (Chunk, Vec<MessageId>) {
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
}
