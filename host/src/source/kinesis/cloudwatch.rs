//! CloudWatch Logs subscription envelopes, pure: one Kinesis record in, one JSON row per log
//! event out (spec `aws-semantics.md` §4, CWL-01..05).
//!
//! A subscription filter writes each batch of log events as one Kinesis record: gzip of a JSON
//! envelope `{owner, logGroup, logStream, subscriptionFilters[], messageType, logEvents[{id,
//! timestamp, message}]}` (CWL-01, CWL-02). [`unpack`] gunzips it and parses it;
//! a `DATA_MESSAGE` becomes one row per log event, carrying the envelope's fields (CWL-04),
//! which the JSON decoder turns into Arrow with [`schema`].
//!
//! # Decisions
//! - The record's bytes are gzip as they are: the SDK has already taken the base64 of the wire
//!   format off, so nothing is base64-decoded again (CWL-01). Concatenated gzip members are
//!   read as one stream.
//! - Decompressed, a record may be at most [`MAX_DECOMPRESSED`] (64 MiB): a gzip bomb is a bad
//!   record, not an out-of-memory.
//! - A `CONTROL_MESSAGE` (the service checking that the stream is there) is
//!   [`Envelope::Control`]: no rows, not an error, and the record still counts as read, so the
//!   checkpoint moves past it (CWL-03).
//! - Rows are flat, because the transforms handle flat columns: `subscriptionFilters` is the
//!   filter names joined with `,` (`""` for none); `timestamp` is the event's own time (not
//!   the Kinesis arrival time) in epoch *micro*seconds, as every timestamp column of the
//!   project; `message` stays a string even when it holds a JSON document.
//! - Unknown fields, at the top and in events, are ignored (CWL-05). A missing `owner`,
//!   `logGroup`, `logStream` or `subscriptionFilters` is a null. A log event without `id`,
//!   `timestamp` or `message` makes the whole record bad, naming the event's index: those
//!   columns are not nullable, and half a record is not passed on.

use std::borrow::Cow;
use std::io::Read;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use flate2::read::MultiGzDecoder;
use serde::Deserialize;

/// The most bytes a record may decompress to.
pub const MAX_DECOMPRESSED: usize = 64 << 20;

/// What one Kinesis record of a CloudWatch Logs subscription holds.
#[derive(Debug)]
pub enum Envelope {
    /// DATA_MESSAGE: one JSON row per log event (each row a complete JSON object, no trailing
    /// newline).
    Data(Vec<Vec<u8>>),
    /// CONTROL_MESSAGE: no rows (CWL-03), but the record counts as read.
    Control,
}

/// Why a record is not a CloudWatch Logs subscription envelope. The record goes to the dead
/// letters with this reason.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CloudWatchError {
    /// The record does not start as gzip does (`1f 8b`).
    #[error("CloudWatch Logs record: not gzip data ({0})")]
    NotGzip(String),
    /// The gzip stream is corrupt or cut short.
    #[error("CloudWatch Logs record: bad gzip data: {0}")]
    BadGzip(String),
    /// It decompresses to more than [`MAX_DECOMPRESSED`].
    #[error("CloudWatch Logs record: more than 64 MiB once decompressed (a gzip bomb?)")]
    TooLarge,
    /// The decompressed bytes are not JSON.
    #[error("CloudWatch Logs record: the decompressed data is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not shaped as an envelope.
    #[error("CloudWatch Logs record: not a subscription envelope: {0}")]
    NotEnvelope(String),
    /// A `messageType` other than `DATA_MESSAGE` and `CONTROL_MESSAGE`.
    #[error("CloudWatch Logs record: unknown messageType \"{0}\" (expected DATA_MESSAGE or CONTROL_MESSAGE)")]
    UnknownMessageType(String),
    /// A log event lacks a field every row needs.
    #[error("CloudWatch Logs record: log event {index} {problem}")]
    BadEvent {
        /// The event's 0-based index in `logEvents`.
        index: usize,
        /// What is wrong with it, e.g. `has no timestamp`.
        problem: String,
    },
}

/// Gunzips and parses one record: its rows, or `Control`, or why it is not an envelope.
pub fn unpack(data: &[u8]) -> Result<Envelope, CloudWatchError> {
    let json = gunzip(data)?;
    let envelope = parse(&json)?;
    match envelope.message_type.as_deref() {
        Some("DATA_MESSAGE") => {}
        Some("CONTROL_MESSAGE") => return Ok(Envelope::Control),
        Some(other) => return Err(CloudWatchError::UnknownMessageType(other.to_string())),
        None => return Err(CloudWatchError::NotEnvelope("no messageType".to_string())),
    }
    let Some(events) = &envelope.log_events else {
        return Err(CloudWatchError::NotEnvelope("no logEvents".to_string()));
    };

    // What every row of the record shares, written once.
    let mut prefix = b"{\"owner\":".to_vec();
    push_json(&mut prefix, &envelope.owner);
    prefix.extend_from_slice(b",\"logGroup\":");
    push_json(&mut prefix, &envelope.log_group);
    prefix.extend_from_slice(b",\"logStream\":");
    push_json(&mut prefix, &envelope.log_stream);
    prefix.extend_from_slice(b",\"subscriptionFilters\":");
    let filters = envelope.subscription_filters.as_ref().map(|names| names.join(","));
    push_json(&mut prefix, &filters);
    prefix.extend_from_slice(b",\"id\":");

    let mut rows = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let bad = |problem: String| CloudWatchError::BadEvent { index, problem };
        let id = event.id.as_ref().ok_or_else(|| bad("has no id".to_string()))?;
        let millis = event.timestamp.ok_or_else(|| bad("has no timestamp".to_string()))?;
        let message = event
            .message
            .as_ref()
            .ok_or_else(|| bad("has no message".to_string()))?;
        let micros = millis
            .checked_mul(1000)
            .ok_or_else(|| bad(format!("has timestamp {millis}, out of range")))?;
        let mut row = Vec::with_capacity(prefix.len() + id.len() + message.len() + 40);
        row.extend_from_slice(&prefix);
        push_json(&mut row, id);
        row.extend_from_slice(b",\"timestamp\":");
        row.extend_from_slice(micros.to_string().as_bytes());
        row.extend_from_slice(b",\"message\":");
        push_json(&mut row, message);
        row.push(b'}');
        rows.push(row);
    }
    Ok(Envelope::Data(rows))
}

/// The Arrow schema of the rows `unpack` produces.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("owner", DataType::Utf8, true),
            Field::new("logGroup", DataType::Utf8, true),
            Field::new("logStream", DataType::Utf8, true),
            Field::new("subscriptionFilters", DataType::Utf8, true),
            Field::new("id", DataType::Utf8, false),
            Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, None), false),
            Field::new("message", DataType::Utf8, false),
        ]))
    });
    SCHEMA.clone()
}

/// The envelope as CloudWatch Logs writes it; unknown fields are ignored (CWL-05).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "a subscription envelope (a JSON object)")]
struct Wire<'a> {
    #[serde(borrow)]
    owner: Option<Cow<'a, str>>,
    #[serde(borrow)]
    log_group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    log_stream: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subscription_filters: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    message_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    log_events: Option<Vec<Event<'a>>>,
}

/// One log event; presence is checked by `unpack`, to name the event that lacks a field.
#[derive(Deserialize)]
#[serde(expecting = "a log event (a JSON object)")]
struct Event<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    timestamp: Option<i64>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

fn parse(json: &[u8]) -> Result<Wire<'_>, CloudWatchError> {
    // serde would take an array for a struct, field by field: only an object is an envelope.
    let object = json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let parsed = if object {
        serde_json::from_slice(json).map_err(|e| e.to_string())
    } else {
        Err("not a JSON object".to_string())
    };
    parsed.map_err(|shape| {
        // A shape error can come before a syntax error further on (`2015-05-28 …` starts as
        // a number): only a document that is JSON throughout is "not an envelope".
        match serde_json::from_slice::<serde::de::IgnoredAny>(json) {
            Ok(_) => CloudWatchError::NotEnvelope(shape),
            Err(syntax) => CloudWatchError::NotJson(syntax.to_string()),
        }
    })
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>, CloudWatchError> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        let first: Vec<String> = data.iter().take(2).map(|b| format!("{b:02x}")).collect();
        return Err(CloudWatchError::NotGzip(if first.is_empty() {
            "empty record".to_string()
        } else {
            format!("first bytes {}", first.join(" "))
        }));
    }
    let mut json = Vec::new();
    // One byte past the cap tells a record of exactly the cap from a larger one.
    MultiGzDecoder::new(data)
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| CloudWatchError::BadGzip(e.to_string()))?;
    if json.len() > MAX_DECOMPRESSED {
        return Err(CloudWatchError::TooLarge);
    }
    Ok(json)
}

/// Appends `value` as JSON (a string escaped and quoted, or `null`).
fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // A string or an absent string always serializes, and a Vec never fails a write.
    serde_json::to_writer(out, value).expect("a string serializes into a Vec");
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;
    use base64::Engine as _;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::{Value, json};

    use super::*;

    /// The captured CONTROL_MESSAGE of CWL-03 (gzip, then base64 for the text).
    const CONTROL: &str = "H4sIAAAAAAAAADWOTQuCQBRF/8ow6wj6ENRdhLXIClJoERKTvsZHOiPzxiLE/96YtTzcy72n4zUQCQnpuwEe8vXxkJ6O8XUfJclqG/EJ1y8FZkgq3RYvYfMy1pJcUGm5NbptXDZSYg2IekRqb5QbbCxqtcHKgiEeXrJvL3qCsgN2HIuxbtFpWFG7sdky8L1ZECwXc9+b/PUGgXPMfnrspxeydQn5A5VkJYjKlkzfWeGWUInhme1QASEx+qpNeZ/1H1PFPn3yAAAA";
    const CLOUDTRAIL: &str = r#"{"eventVersion":"1.03","userIdentity":{"type":"Root"}"#;
    const IDS: [&str; 3] = [
        "31953106606966983378809025079804211143289615424298221568",
        "31953106606966983378809025079804211143289615424298221569",
        "31953106606966983378809025079804211143289615424298221570",
    ];

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::new(6));
        encoder.write_all(bytes).expect("write");
        encoder.finish().expect("gzip")
    }

    fn gzip_json(value: &Value) -> Vec<u8> {
        gzip(value.to_string().as_bytes())
    }

    fn raw_rows(data: &[u8]) -> Vec<Vec<u8>> {
        match unpack(data) {
            Ok(Envelope::Data(rows)) => rows,
            other => panic!("expected rows, got {other:?}"),
        }
    }

    fn rows(data: &[u8]) -> Vec<Value> {
        raw_rows(data)
            .iter()
            .map(|row| serde_json::from_slice(row).expect("a row is JSON"))
            .collect()
    }

    /// The documented DATA_MESSAGE of CWL-02, with the three events CWL-04 names.
    fn documented() -> Value {
        json!({
            "owner": "111111111111",
            "logGroup": "CloudTrail/logs",
            "logStream": "111111111111_CloudTrail/logs_us-east-1",
            "subscriptionFilters": ["Destination"],
            "messageType": "DATA_MESSAGE",
            "logEvents": [
                {"id": IDS[0], "timestamp": 1432826855000_i64, "message": CLOUDTRAIL},
                {"id": IDS[1], "timestamp": 1432826855000_i64, "message": CLOUDTRAIL},
                {"id": IDS[2], "timestamp": 1432826855000_i64, "message": CLOUDTRAIL},
            ]
        })
    }

    fn error(data: &[u8]) -> CloudWatchError {
        unpack(data).expect_err("not an envelope")
    }

    #[test]
    fn cwl_02_cwl_04_documented_data_message_is_three_rows() {
        let rows = rows(&gzip_json(&documented()));
        assert_eq!(rows.len(), 3);
        for (row, id) in rows.iter().zip(IDS) {
            assert_eq!(row["logGroup"], "CloudTrail/logs");
            assert_eq!(row["id"], id);
            // Event time in microseconds: the event's own milliseconds × 1000.
            assert_eq!(row["timestamp"], 1_432_826_855_000_000_i64);
            assert_eq!(row["message"], CLOUDTRAIL);
        }
    }

    #[test]
    fn a_row_is_one_flat_json_object_in_a_fixed_key_order() {
        let rows = raw_rows(&gzip_json(&documented()));
        let expected = concat!(
            r#"{"owner":"111111111111","logGroup":"CloudTrail/logs","#,
            r#""logStream":"111111111111_CloudTrail/logs_us-east-1","subscriptionFilters":"Destination","#,
            r#""id":"31953106606966983378809025079804211143289615424298221568","timestamp":1432826855000000,"#,
            r#""message":"{\"eventVersion\":\"1.03\",\"userIdentity\":{\"type\":\"Root\"}"}"#
        );
        assert_eq!(String::from_utf8_lossy(&rows[0]), expected);
        assert!(rows.iter().all(|row| !row.ends_with(b"\n")));
    }

    #[test]
    fn cwl_03_control_message_is_no_rows_and_no_error() {
        let data = base64::engine::general_purpose::STANDARD
            .decode(CONTROL)
            .expect("base64");
        assert!(matches!(unpack(&data), Ok(Envelope::Control)));
        // The Firehose variant (VECTOR).
        let firehose = json!({
            "messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
            "subscriptionFilters": [],
            "logEvents": [{"id": "", "timestamp": 1_498_519_943_285_i64,
                           "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]
        });
        assert!(matches!(unpack(&gzip_json(&firehose)), Ok(Envelope::Control)));
    }

    #[test]
    fn cwl_01_not_gzip_is_an_error_naming_the_first_bytes() {
        let e = error(br#"{"owner":"1"}"#);
        assert_eq!(
            e.to_string(),
            "CloudWatch Logs record: not gzip data (first bytes 7b 22)"
        );
        // Base64 text of gzip is not decoded a second time.
        assert_eq!(
            error(CONTROL.as_bytes()),
            CloudWatchError::NotGzip("first bytes 48 34".into())
        );
        assert_eq!(error(b""), CloudWatchError::NotGzip("empty record".into()));
        assert_eq!(error(&[0x1f]), CloudWatchError::NotGzip("first bytes 1f".into()));
    }

    #[test]
    fn bad_gzip_is_an_error() {
        assert!(matches!(error(&[0x1f, 0x8b, 0, 0, 0, 0]), CloudWatchError::BadGzip(_)));
        let whole = gzip_json(&documented());
        let cut = &whole[..whole.len() - 10];
        assert!(matches!(error(cut), CloudWatchError::BadGzip(_)), "{:?}", error(cut));
    }

    #[test]
    fn concatenated_gzip_members_are_one_stream() {
        let text = documented().to_string();
        let (a, b) = text.split_at(text.len() / 2);
        let data = [gzip(a.as_bytes()), gzip(b.as_bytes())].concat();
        assert_eq!(rows(&data).len(), 3);
    }

    #[test]
    fn more_than_64_mib_decompressed_is_a_bad_record() {
        // 65 gzip members of 1 MiB of spaces each: valid gzip, 65 MiB once decompressed.
        let member = gzip(&vec![b' '; 1 << 20]);
        let bomb = member.repeat(65);
        assert!(bomb.len() < 100 << 10);
        let e = error(&bomb);
        assert_eq!(e, CloudWatchError::TooLarge);
        assert!(e.to_string().contains("64 MiB"));
        // 63 MiB of spaces around a document is fine.
        let text = documented().to_string();
        let under = [member.repeat(63), gzip(text.as_bytes())].concat();
        assert_eq!(rows(&under).len(), 3);
    }

    #[test]
    fn gzip_of_non_json_is_an_error() {
        let e = error(&gzip(b"2015-05-28 15:27:35 not json"));
        assert!(matches!(e, CloudWatchError::NotJson(_)), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("CloudWatch Logs record: the decompressed data is not JSON")
        );
        assert!(matches!(error(&gzip(b"")), CloudWatchError::NotJson(_)));
    }

    #[test]
    fn json_that_is_not_an_envelope_is_an_error() {
        let no_events = json!({"owner": "1", "messageType": "DATA_MESSAGE"});
        assert_eq!(
            error(&gzip_json(&no_events)),
            CloudWatchError::NotEnvelope("no logEvents".into())
        );
        let no_type = json!({"owner": "1", "logEvents": []});
        assert_eq!(
            error(&gzip_json(&no_type)).to_string(),
            "CloudWatch Logs record: not a subscription envelope: no messageType"
        );
        // An array of the right values in the right order is still not an envelope.
        let array = json!(["1", "g", "s", [], "DATA_MESSAGE", []]);
        assert_eq!(
            error(&gzip_json(&array)).to_string(),
            "CloudWatch Logs record: not a subscription envelope: not a JSON object"
        );
        assert!(matches!(error(&gzip(br#" "text""#)), CloudWatchError::NotEnvelope(_)));
        assert!(matches!(error(&gzip(b"[1, 2")), CloudWatchError::NotJson(_)));
        assert_eq!(
            error(&gzip(br#"{"owner": 7}"#)).to_string(),
            "CloudWatch Logs record: not a subscription envelope: \
             invalid type: integer `7`, expected a string at line 1 column 11"
        );
        let events_not_a_list = json!({"messageType": "DATA_MESSAGE", "logEvents": {"id": "1"}});
        assert!(matches!(
            error(&gzip_json(&events_not_a_list)),
            CloudWatchError::NotEnvelope(_)
        ));
        let unknown = json!({"messageType": "METRIC_MESSAGE", "logEvents": []});
        assert_eq!(
            error(&gzip_json(&unknown)).to_string(),
            "CloudWatch Logs record: unknown messageType \"METRIC_MESSAGE\" (expected DATA_MESSAGE or CONTROL_MESSAGE)"
        );
    }

    #[test]
    fn an_event_without_timestamp_message_or_id_spoils_the_record() {
        for (field, problem) in [
            ("timestamp", "has no timestamp"),
            ("message", "has no message"),
            ("id", "has no id"),
        ] {
            let mut envelope = documented();
            envelope["logEvents"][1].as_object_mut().expect("event").remove(field);
            assert_eq!(
                error(&gzip_json(&envelope)),
                CloudWatchError::BadEvent {
                    index: 1,
                    problem: problem.into()
                }
            );
        }
        let mut envelope = documented();
        envelope["logEvents"][2]["timestamp"] = json!(i64::MAX);
        let e = error(&gzip_json(&envelope));
        assert!(
            e.to_string()
                .starts_with("CloudWatch Logs record: log event 2 has timestamp"),
            "{e}"
        );
    }

    #[test]
    fn cwl_05_unknown_fields_and_empty_filters_are_accepted() {
        let mut envelope = documented();
        envelope["policyLevel"] = json!("ACCOUNT_LEVEL_POLICY");
        envelope["extra"] = json!({"nested": [1, {"deep": null}]});
        envelope["subscriptionFilters"] = json!([]);
        envelope["logEvents"][0]["extractedFields"] = json!({"a": "b"});
        let rows = rows(&gzip_json(&envelope));
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["subscriptionFilters"], "");
        let keys: Vec<&str> = rows[0]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "owner",
                "logGroup",
                "logStream",
                "subscriptionFilters",
                "id",
                "timestamp",
                "message"
            ]
        );
    }

    #[test]
    fn filters_are_joined_and_a_missing_envelope_field_is_null() {
        let mut envelope = documented();
        envelope["subscriptionFilters"] = json!(["one", "two"]);
        envelope.as_object_mut().expect("object").remove("owner");
        let rows = rows(&gzip_json(&envelope));
        assert_eq!(rows[0]["subscriptionFilters"], "one,two");
        assert_eq!(rows[0]["owner"], Value::Null);
    }

    #[test]
    fn a_message_holding_json_stays_a_string() {
        let mut envelope = documented();
        envelope["logEvents"][0]["message"] = json!(r#"{"a":1}"#);
        let rows = rows(&gzip_json(&envelope));
        assert_eq!(rows[0]["message"], Value::String(r#"{"a":1}"#.into()));
    }

    #[test]
    fn a_data_message_without_events_has_no_rows() {
        let mut envelope = documented();
        envelope["logEvents"] = json!([]);
        assert!(rows(&gzip_json(&envelope)).is_empty());
    }

    /// The rows decode with the schema, as the JSON decoder will decode them: the row JSON
    /// and `schema()` agree, microsecond timestamps included.
    #[test]
    fn rows_decode_into_the_schema_with_arrow_json() {
        let mut first = documented();
        first["subscriptionFilters"] = json!(["a", "b"]);
        first["logEvents"][1]["timestamp"] = json!(1_432_826_856_001_i64);
        let mut second = json!({
            "messageType": "DATA_MESSAGE",
            "logGroup": "/aws/lambda/f",
            "logStream": "2026/01/05/[$LATEST]abc",
            "logEvents": [{"id": "1", "timestamp": 0, "message": "line with \"quotes\" and \\n and é"}]
        });
        second["extra"] = json!(true);
        let mut decoder = arrow_json::ReaderBuilder::new(schema())
            .build_decoder()
            .expect("decoder");
        for envelope in [&first, &second] {
            for row in raw_rows(&gzip_json(envelope)) {
                assert_eq!(decoder.decode(&row).expect("decode"), row.len());
            }
        }
        let batch = decoder.flush().expect("flush").expect("a batch");
        assert_eq!(batch.schema(), schema());
        assert_eq!(batch.num_rows(), 4);
        let text = |name: &str| {
            let column = batch.column_by_name(name).expect("column").as_string::<i32>();
            (0..column.len())
                .map(|i| column.is_valid(i).then(|| column.value(i).to_string()))
                .collect::<Vec<_>>()
        };
        let some = |s: &str| Some(s.to_string());
        let owner = some("111111111111");
        assert_eq!(text("owner"), [owner.clone(), owner.clone(), owner, None]);
        assert_eq!(text("logStream")[3], some("2026/01/05/[$LATEST]abc"));
        assert_eq!(
            text("subscriptionFilters"),
            [some("a,b"), some("a,b"), some("a,b"), None]
        );
        assert_eq!(text("id"), [some(IDS[0]), some(IDS[1]), some(IDS[2]), some("1")]);
        assert_eq!(text("message")[0], some(CLOUDTRAIL));
        assert_eq!(text("message")[3], some("line with \"quotes\" and \\n and é"));
        let times = batch
            .column_by_name("timestamp")
            .expect("timestamp")
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            times.values().to_vec(),
            [1_432_826_855_000_000, 1_432_826_856_001_000, 1_432_826_855_000_000, 0]
        );
    }
}
