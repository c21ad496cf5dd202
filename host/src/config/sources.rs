//! `[source]`: the common keys and each kind's own.

use std::path::Path;
use std::time::Duration;

use toml::de::DeValue;

use super::diagnostic::Diags;
use super::reader::{Located, Table, describe};
use super::*;

mod kinesis;

pub(super) fn read_source(t: &mut Table<'_, '_>, d: &mut Diags, base: &Path) -> Option<SourceConfig> {
    let kind = t.req_choice(d, "type", &["file", "mqtt", "datagen", "kinesis"]);
    match kind.as_ref().map(|k| k.value.as_str()) {
        Some("mqtt") => return read_mqtt_source(t, d, base),
        Some("datagen") => return read_datagen_source(t, d),
        Some("kinesis") => return kinesis::read_kinesis_source(t, d),
        _ => {}
    }
    // An unknown type is checked as a file source, so its other keys get their errors too.
    let path = t.req_str(d, "path");
    let batch_rows = read_batch_rows(t, d);
    let infer_rows = t
        .opt_uint(d, "infer_rows", 1..=1_000_000)
        .map_or(1000, |v| v.value as usize);
    let max_open_files = t
        .opt_uint(d, "max_open_files", 1..=4096)
        .map_or(DEFAULT_MAX_OPEN_FILES, |v| v.value as usize);
    let follow = read_follow(t, d, path.as_ref());
    let schema = t.opt_table(d, "schema").map(|s| read_schema(&s, d));
    kind?;
    let path = path?;
    let resolved = (path.value != "-").then(|| resolve(base, &path.value));
    Some(SourceConfig::File(FileSourceConfig {
        path,
        resolved,
        batch_rows,
        schema: schema.flatten(),
        infer_rows,
        max_open_files,
        follow: follow?,
    }))
}

/// `follow`, and the keys that tune it. `Some(None)`: not following; `None`: an error.
fn read_follow(t: &mut Table<'_, '_>, d: &mut Diags, path: Option<&Located<String>>) -> Option<Option<FollowConfig>> {
    let follow = t.opt_bool(d, "follow");
    let poll_interval = t.opt_duration(d, "poll_interval", Duration::from_millis(10)..=Duration::from_secs(60));
    let rotate_wait = t.opt_duration(d, "rotate_wait", Duration::ZERO..=Duration::from_secs(3600));
    let on = follow.as_ref().is_some_and(|f| f.value);
    if !on {
        for tuning in [&poll_interval, &rotate_wait].into_iter().flatten() {
            d.push(tuning.span.clone(), &tuning.key, "applies only with follow = true");
        }
        return Some(None);
    }
    if let (Some(f), Some(p)) = (&follow, path)
        && p.value == "-"
    {
        d.push(
            f.span.clone(),
            &f.key,
            "follow = true needs files to follow: stdin is read until it ends anyway",
        );
        return None;
    }
    Some(Some(FollowConfig {
        poll_interval: poll_interval.map_or(Duration::from_millis(250), |v| v.value),
        rotate_wait: rotate_wait.map_or(Duration::from_secs(5), |v| v.value),
    }))
}

/// `[source] type = "datagen"`.
fn read_datagen_source(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<SourceConfig> {
    let template = t.req_choice(d, "template", &["sensors", "ticks"]);
    let rows = t.opt_uint(d, "rows", 1..=u64::MAX >> 1).map(|v| v.value);
    let partitions = t.opt_uint(d, "partitions", 1..=10_000).map_or(1, |v| v.value);
    let rate = t.opt_uint(d, "rate", 1..=1_000_000_000).map(|v| v.value);
    let disorder = t
        .opt_duration(d, "disorder", Duration::ZERO..=Duration::from_secs(24 * 3600))
        .map_or(Duration::ZERO, |v| v.value);
    let interval = t
        .opt_duration(d, "interval", Duration::from_micros(1)..=Duration::from_secs(24 * 3600))
        .map_or(Duration::from_secs(1), |v| v.value);
    let start = t.opt_str(d, "start");
    let start_micros = match &start {
        None => Some(1_767_225_600_000_000), // 2026-01-01T00:00:00Z
        Some(s) => match chrono::NaiveDateTime::parse_from_str(&s.value, "%Y-%m-%dT%H:%M:%S") {
            Ok(t) => Some(t.and_utc().timestamp_micros()),
            Err(_) => {
                d.push(
                    s.span.clone(),
                    &s.key,
                    format!(
                        "expected a time such as \"2026-01-01T00:00:00\" (UTC), found \"{}\"",
                        s.value
                    ),
                );
                None
            }
        },
    };
    let seed = t.opt_uint(d, "seed", 0..=u64::MAX >> 1).map_or(0, |v| v.value);
    let batch_rows = read_batch_rows(t, d);
    let schema = t.opt_table(d, "schema").map(|s| read_schema(&s, d));
    let template = match template?.value.as_str() {
        "ticks" => DatagenTemplate::Ticks,
        _ => DatagenTemplate::Sensors,
    };
    Some(SourceConfig::Datagen(DatagenSourceConfig {
        template,
        rows,
        partitions,
        rate,
        disorder,
        interval,
        start_micros: start_micros?,
        seed,
        batch_rows,
        schema: schema.flatten(),
    }))
}

/// `batch_rows` of any source (default 8192).
fn read_batch_rows(t: &mut Table<'_, '_>, d: &mut Diags) -> usize {
    t.opt_uint(d, "batch_rows", 1..=1_048_576)
        .map_or(8192, |v| v.value as usize)
}

/// `[source] type = "mqtt"`.
fn read_mqtt_source(t: &mut Table<'_, '_>, d: &mut Diags, base: &Path) -> Option<SourceConfig> {
    let url = t.req_str(d, "url");
    if let Some(u) = &url
        && !(u.value.starts_with("mqtt://") || u.value.starts_with("mqtts://"))
    {
        d.push(
            u.span.clone(),
            &u.key,
            format!("expected mqtt://host:port or mqtts://host:port, found \"{}\"", u.value),
        );
    }
    let topics = t.req_str_list(d, "topics");
    let client_id = t.opt_str(d, "client_id").map(|c| c.value);
    let qos = t.opt_uint(d, "qos", 0..=1).map_or(1, |q| q.value as u8);
    let clean_session = t.opt_bool(d, "clean_session").is_some_and(|b| b.value);
    let mut file = |t: &mut Table<'_, '_>, name: &'static str| {
        t.opt_str(d, name).map(|p| Located {
            value: resolve(base, &p.value),
            span: p.span,
            key: p.key,
        })
    };
    let ca_file = file(t, "ca_file");
    let cert_file = file(t, "cert_file");
    let key_file = file(t, "key_file");
    if let (Some(c), None) | (None, Some(c)) = (&cert_file, &key_file) {
        d.push(
            c.span.clone(),
            &c.key,
            "a client certificate needs both cert_file and key_file".to_owned(),
        );
    }
    let username = t.opt_str(d, "username").map(|u| u.value);
    let password = t.opt_str(d, "password").map(|p| p.value);
    let topic_column = read_topic_column(t, d);
    let keep_alive = t.opt_duration(d, "keep_alive", Duration::from_secs(1)..=Duration::from_secs(65535));
    let max_latency = t.opt_duration(d, "max_latency", Duration::from_millis(1)..=Duration::from_secs(3600));
    let batch_rows = read_batch_rows(t, d);
    let max_inflight = t
        .opt_uint(d, "max_inflight", 1..=65_535)
        .map_or(20, |v| v.value as usize);
    let max_message_bytes = t
        .opt_uint(d, "max_message_bytes", 1..=268_435_455)
        .map_or(1 << 20, |v| v.value as usize);
    let include_retained = t.opt_bool(d, "include_retained").is_some_and(|b| b.value);
    let connect_attempts = t
        .opt_uint(d, "connect_attempts", 1..=1_000_000)
        .map_or(10, |v| v.value as u32);
    let schema = match t.opt_table(d, "schema") {
        Some(s) => read_schema(&s, d),
        None => {
            d.push(
                t.span(),
                t.key(),
                "an MQTT source needs a declared schema ([source.schema]): messages arrive after the run starts, so there is nothing to infer it from",
            );
            None
        }
    };
    Some(SourceConfig::Mqtt(Box::new(MqttSourceConfig {
        url: url?,
        topics: topics?,
        client_id,
        qos,
        clean_session,
        ca_file,
        cert_file,
        key_file,
        username,
        password,
        topic_column,
        keep_alive: keep_alive.map_or(Duration::from_secs(30), |k| k.value),
        max_latency: max_latency.map_or(Duration::from_secs(1), |m| m.value),
        batch_rows,
        max_inflight,
        max_message_bytes,
        include_retained,
        connect_attempts,
        schema: schema?,
    })))
}

/// `topic_column = "topic"` or `topic_column = { name = "device", level = 1 }`.
fn read_topic_column(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<TopicColumn> {
    let key = t.child_key("topic_column");
    let raw = t.raw("topic_column")?;
    match raw.get_ref() {
        DeValue::String(s) => Some(TopicColumn {
            name: s.to_string(),
            level: None,
        }),
        DeValue::Table(inner) => {
            let mut inner = Table::new(inner, raw.span(), key);
            let name = inner.req_str(d, "name");
            let level = inner.opt_uint(d, "level", 0..=1000).map(|l| l.value as usize);
            inner.finish(d);
            Some(TopicColumn {
                name: name?.value,
                level,
            })
        }
        other => {
            d.push(
                raw.span(),
                &key,
                format!(
                    "expected a column name or a table {{ name = \"…\", level = … }}, found {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

/// `[source.schema]`: `column = "type"` or `column = { type = "…", nullable = false }`.
fn read_schema(t: &Table<'_, '_>, d: &mut Diags) -> Option<Vec<DeclaredField>> {
    let mut fields = Vec::new();
    let mut ok = true;
    for (k, v) in t.entries() {
        let key = t.child_key(k.get_ref());
        let (ty_value, nullable) = match v.get_ref() {
            DeValue::String(s) => (Some((s.to_string(), v.span(), key.clone())), true),
            DeValue::Table(inner) => {
                let mut inner = Table::new(inner, v.span(), key.clone());
                let ty = inner.req_str(d, "type").map(|l| (l.value, l.span, l.key));
                let nullable = inner.opt_bool(d, "nullable").is_none_or(|n| n.value);
                inner.finish(d);
                (ty, nullable)
            }
            other => {
                d.push(
                    v.span(),
                    &key,
                    format!(
                        "expected a type name or a table {{ type = \"…\", nullable = … }}, found {}",
                        describe(other)
                    ),
                );
                (None, true)
            }
        };
        let Some((name, span, ty_key)) = ty_value else {
            ok = false;
            continue;
        };
        match FieldType::parse(&name) {
            Some(ty) => fields.push(DeclaredField {
                name: k.get_ref().to_string(),
                ty: Located {
                    value: ty,
                    span,
                    key: ty_key,
                },
                nullable,
            }),
            None => {
                ok = false;
                d.push(
                    span,
                    &ty_key,
                    format!(
                        "unknown type \"{name}\": expected one of {}",
                        reader::quoted(FieldType::NAMES)
                    ),
                );
            }
        }
    }
    if fields.is_empty() && ok {
        d.push(
            t.span(),
            t.key(),
            "a declared schema needs at least one column (or leave [source.schema] out to infer it)",
        );
        return None;
    }
    ok.then_some(fields)
}
