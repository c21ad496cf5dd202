//! `[source] type = "kinesis"`.

use std::time::Duration;

use toml::de::DeValue;

use super::super::diagnostic::Diags;
use super::super::reader::{Table, describe};
use super::super::*;
use super::{read_batch_rows, read_schema};

/// `[source] type = "kinesis"`.
pub(in crate::config) fn read_kinesis_source(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<SourceConfig> {
    let stream = read_stream(t, d);
    let region = t.opt_str(d, "region").map(|r| r.value);
    let endpoint_url = crate::config::s3::read_endpoint_url(t, d);
    let start = read_start(t, d);
    let consumer = read_consumer(t, d);
    let decode = t
        .opt_choice(d, "decode", &["json", "cloudwatch_logs", "lines"])
        .map(|c| match c.value.as_str() {
            "cloudwatch_logs" => KinesisDecode::CloudwatchLogs,
            "lines" => KinesisDecode::Lines,
            _ => KinesisDecode::Json,
        })
        .unwrap_or(KinesisDecode::Json);
    let batch_rows = read_batch_rows(t, d);
    // GetRecords takes 1..=10000; more is refused here rather than clamped (KDS-06).
    let max_records = t
        .opt_uint(d, "max_records", 1..=10_000)
        .map_or(10_000, |v| v.value as u32);
    let idle_poll = t
        .opt_duration(d, "idle_poll", Duration::from_millis(200)..=Duration::from_secs(300))
        .map_or(Duration::from_secs(1), |v| v.value);
    let end = t.opt_choice(d, "end", &["never", "caught_up"]);
    let end_caught_up = end.as_ref().is_some_and(|e| e.value == "caught_up");
    let schema = match (t.opt_table(d, "schema"), decode) {
        (Some(s), KinesisDecode::Json) => read_schema(&s, d),
        (Some(s), _) => {
            d.push(
                s.span(),
                s.key(),
                "this decode gives fixed columns: leave [source.schema] out (a transform can parse a column further)",
            );
            None
        }
        (None, KinesisDecode::Json) => {
            d.push(
                t.span(),
                t.key(),
                "a Kinesis source with decode = \"json\" needs a declared schema ([source.schema]): records arrive after the run starts, so there is nothing to infer it from",
            );
            None
        }
        (None, _) => None,
    };
    let leases = t.opt_table(d, "leases").and_then(|l| read_leases(l, d));
    if let (Some(_), Some(end)) = (&leases, end.filter(|e| e.value == "caught_up")) {
        d.push(
            end.span,
            &end.key,
            "`end = \"caught_up\"` cannot be combined with [source.leases]: instances sharing a stream run until stopped",
        );
        return None;
    }
    if decode == KinesisDecode::Json && schema.is_none() {
        return None;
    }
    Some(SourceConfig::Kinesis(Box::new(KinesisSourceConfig {
        stream: stream?,
        region,
        endpoint_url: endpoint_url.map(|e| e.value),
        start: start?,
        consumer: consumer?,
        decode,
        batch_rows,
        max_records,
        idle_poll,
        end_caught_up,
        schema,
        leases,
    })))
}

/// `[source.leases]`: `table`, and optionally `worker_id`, `failover`, `max_leases`,
/// `cleanup_after`, `region`, `endpoint_url`.
fn read_leases(mut t: Table<'_, '_>, d: &mut Diags) -> Option<LeaseConfig> {
    let table = t.req_str(d, "table");
    let worker_id = t.opt_str(d, "worker_id");
    // KCL's own floor for failoverTimeMillis is far lower, but renewing more than three
    // times a second costs DynamoDB writes for no gain.
    let failover = t
        .opt_duration(d, "failover", Duration::from_secs(1)..=Duration::from_secs(3600))
        .map_or(Duration::from_secs(10), |v| v.value);
    let max_leases = t.opt_uint(d, "max_leases", 0..=100_000).map_or(0, |v| v.value as u32);
    // KCL's completedLeaseCleanupIntervalMillis.
    let cleanup_after = t
        .opt_duration(d, "cleanup_after", Duration::ZERO..=Duration::from_secs(7 * 24 * 3600))
        .map_or(Duration::from_secs(300), |v| v.value);
    let region = t.opt_str(d, "region").map(|r| r.value);
    let endpoint_url = crate::config::s3::read_endpoint_url(&mut t, d).map(|e| e.value);
    t.finish(d);
    let table = table?;
    // DynamoDB's rule for table names.
    let valid = (3..=255).contains(&table.value.len())
        && table
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        d.push(
            table.span.clone(),
            &table.key,
            format!(
                "expected a DynamoDB table name (3 to 255 letters, digits, `_`, `-` or `.`), found \"{}\"",
                table.value
            ),
        );
        return None;
    }
    if let Some(w) = worker_id.as_ref().filter(|w| w.value.is_empty()) {
        d.push(w.span.clone(), &w.key, "expected a non-empty worker id");
        return None;
    }
    Some(LeaseConfig {
        table: table.value,
        worker_id: worker_id.map(|w| w.value),
        failover,
        max_leases,
        cleanup_after,
        region,
        endpoint_url,
    })
}

/// `stream = "name"` or `stream_arn = "arn:…"`, exactly one.
fn read_stream(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<KinesisStream> {
    let name = t.opt_str(d, "stream");
    let arn = t.opt_str(d, "stream_arn");
    match (name, arn) {
        (Some(n), None) => Some(KinesisStream::Name(n.value)),
        (None, Some(a)) if a.value.starts_with("arn:") && a.value.contains(":stream/") => {
            Some(KinesisStream::Arn(a.value))
        }
        (None, Some(a)) => {
            d.push(
                a.span.clone(),
                &a.key,
                format!(
                    "expected a stream ARN such as \"arn:aws:kinesis:us-east-1:123456789012:stream/name\", found \"{}\"",
                    a.value
                ),
            );
            None
        }
        (Some(_), Some(a)) => {
            d.push(
                a.span.clone(),
                &a.key,
                "give either `stream` or `stream_arn`, not both".to_owned(),
            );
            None
        }
        (None, None) => {
            d.push(
                t.span(),
                t.key(),
                "a Kinesis source needs `stream` (the stream's name) or `stream_arn`",
            );
            None
        }
    }
}

/// `start = "trim_horizon" | "latest" | { at_timestamp = "2026-01-01T00:00:00Z" }`.
fn read_start(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<KinesisStart> {
    let key = t.child_key("start");
    let Some(raw) = t.raw("start") else {
        return Some(KinesisStart::TrimHorizon);
    };
    let expected = "expected \"trim_horizon\", \"latest\" or { at_timestamp = \"2026-01-01T00:00:00Z\" }";
    match raw.get_ref() {
        DeValue::String(s) if s.eq_ignore_ascii_case("trim_horizon") => Some(KinesisStart::TrimHorizon),
        DeValue::String(s) if s.eq_ignore_ascii_case("latest") => Some(KinesisStart::Latest),
        DeValue::Table(inner) => {
            let mut inner = Table::new(inner, raw.span(), key);
            let at = inner.req_str(d, "at_timestamp");
            inner.finish(d);
            let at = at?;
            match chrono::DateTime::parse_from_rfc3339(&at.value) {
                Ok(time) => Some(KinesisStart::AtTimestamp(time.timestamp_millis())),
                Err(_) => {
                    d.push(
                        at.span.clone(),
                        &at.key,
                        format!(
                            "expected an RFC 3339 time such as \"2026-01-01T00:00:00Z\", found \"{}\"",
                            at.value
                        ),
                    );
                    None
                }
            }
        }
        other => {
            d.push(raw.span(), &key, format!("{expected}, found {}", describe(other)));
            None
        }
    }
}

/// `consumer = "polling" | { efo = "consumer-name" }`.
fn read_consumer(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<KinesisConsumer> {
    let key = t.child_key("consumer");
    let Some(raw) = t.raw("consumer") else {
        return Some(KinesisConsumer::Polling);
    };
    match raw.get_ref() {
        DeValue::String(s) if s.eq_ignore_ascii_case("polling") => Some(KinesisConsumer::Polling),
        DeValue::Table(inner) => {
            let mut inner = Table::new(inner, raw.span(), key);
            let name = inner.req_str(d, "efo");
            inner.finish(d);
            let name = name?;
            let valid = !name.value.is_empty()
                && name.value.len() <= 128
                && name
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if valid {
                Some(KinesisConsumer::Efo(name.value))
            } else {
                d.push(
                    name.span.clone(),
                    &name.key,
                    format!(
                        "expected a consumer name of 1 to 128 letters, digits, `_`, `.` or `-`, found \"{}\"",
                        name.value
                    ),
                );
                None
            }
        }
        other => {
            d.push(
                raw.span(),
                &key,
                format!(
                    "expected \"polling\" or {{ efo = \"consumer-name\" }}, found {}",
                    describe(other)
                ),
            );
            None
        }
    }
}
