//! `[sink]` or `[[sink]]` tables, and partition settings.

use std::path::Path;
use std::time::Duration;

use super::diagnostic::Diags;
use super::reader::{Located, Table};
use super::template::check_template;
use super::*;

/// `[sink]` or `[[sink]]` tables: at least one, names unique.
pub(super) fn read_sinks(top: &mut Table<'_, '_>, d: &mut Diags, base: &Path) -> Option<Vec<SinkConfig>> {
    let Some(tables) = top.table_or_tables(d, "sink") else {
        top.req_table(d, "sink");
        return None;
    };
    let several = tables.len() > 1;
    let mut sinks = Vec::new();
    let mut ok = !tables.is_empty();
    if tables.is_empty() {
        d.push(top.span(), "sink", "expected at least one [[sink]] table".to_owned());
    }
    for (i, mut t) in tables.into_iter().enumerate() {
        let default = if several {
            format!("sink-{i}")
        } else {
            "sink".to_owned()
        };
        match read_sink(&mut t, d, base, default) {
            Some(s) => {
                if sinks.iter().any(|o: &SinkConfig| o.name.value == s.name.value) {
                    d.push(
                        s.name.span.clone(),
                        &s.name.key,
                        format!(
                            "another sink is already called `{}`: sink names must be unique",
                            s.name.value
                        ),
                    );
                    ok = false;
                }
                sinks.push(s);
            }
            None => ok = false,
        }
        t.finish(d);
    }
    ok.then_some(sinks)
}

fn read_sink(t: &mut Table<'_, '_>, d: &mut Diags, base: &Path, default_name: String) -> Option<SinkConfig> {
    let kind = t.req_choice(d, "type", &["parquet", "local", "s3", "console"]);
    let name = read_name(t, d, default_name);
    let input = t.opt_str(d, "input");
    if kind.as_ref().is_some_and(|k| k.value == "console") {
        return Some(console_sink(t, d, name, input));
    }
    let format = read_format(t, d, kind.as_ref());
    let s3 = kind.as_ref().is_some_and(|k| k.value == "s3");
    let (place, prefix_template) = if s3 {
        match super::s3::read_s3_sink(t, d) {
            Some((loc, template)) => (Some(Place::S3(loc)), template),
            None => (None, None),
        }
    } else {
        (
            t.req_str(d, "path").map(|p| Place::Local(resolve(base, &p.value))),
            None,
        )
    };
    let part_bytes = if s3 {
        t.opt_uint(d, "part_mb", 5..=5120).map_or(8, |v| v.value) as usize * 1024 * 1024
    } else {
        0
    };
    let error_prefix = if s3 { super::s3::read_error_prefix(t, d) } else { None };
    let compression = t
        .opt_choice(d, "compression", &["snappy", "zstd", "none"])
        .map(|c| match c.value.as_str() {
            "zstd" => Compression::Zstd,
            "none" => Compression::None,
            _ => Compression::Snappy,
        });
    let row_group_rows = t
        .opt_uint(d, "row_group_rows", 1024..=16_777_216)
        .map_or(131_072, |v| v.value as usize);
    let target_file_mb = t.opt_uint(d, "target_file_mb", 1..=16_384).map_or(128, |v| v.value);
    let max_file_age = t
        .opt_duration(
            d,
            "max_file_age",
            Duration::from_millis(10)..=Duration::from_secs(7 * 24 * 3600),
        )
        .map_or(Duration::from_secs(15 * 60), |v| v.value);
    let partition = match t.opt_table(d, "partition") {
        Some(p) if prefix_template.is_some() => {
            d.push(
                p.span(),
                p.key(),
                "the prefix's !{timestamp:…} already partitions by arrival time: give one or the other".to_owned(),
            );
            p.finish(d);
            None
        }
        Some(mut p) => {
            let part = read_partition(&mut p, d);
            p.finish(d);
            part
        }
        None if prefix_template.is_some() => Some(PartitionConfig::IngestTime {
            granularity: Granularity::Hour,
            template: prefix_template,
        }),
        // The raw archive's default is Firehose's layout.
        None if format == SinkFormat::Raw => Some(PartitionConfig::IngestTime {
            granularity: Granularity::Hour,
            template: Some(Located {
                value: "%Y/%m/%d/%H".to_owned(),
                span: t.span(),
                key: t.child_key("partition"),
            }),
        }),
        None => Some(PartitionConfig::None),
    };
    kind?;
    Some(SinkConfig {
        name,
        input,
        format,
        place: place?,
        part_bytes,
        error_prefix,
        compression: compression.unwrap_or(Compression::Snappy),
        row_group_rows,
        target_file_bytes: target_file_mb * 1024 * 1024,
        max_file_age,
        partition: partition?,
    })
}

/// `type = "console"`: rows to stdout, `format = "json"` (default) or `"table"`; nothing else.
fn console_sink(
    t: &mut Table<'_, '_>,
    d: &mut Diags,
    name: Located<String>,
    input: Option<Located<String>>,
) -> SinkConfig {
    let format = match t.opt_choice(d, "format", &["json", "table"]) {
        Some(f) if f.value == "table" => ConsoleFormat::Table,
        _ => ConsoleFormat::Json,
    };
    SinkConfig {
        name,
        input,
        format: SinkFormat::Console(format),
        place: Place::Console,
        part_bytes: 0,
        error_prefix: None,
        compression: Compression::None,
        row_group_rows: 0,
        target_file_bytes: 0,
        max_file_age: Duration::ZERO,
        partition: PartitionConfig::None,
    }
}

fn read_partition(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<PartitionConfig> {
    let by = t.req_choice(d, "by", &["none", "ingest_time", "event_time", "field"]);
    let by = by?;
    let granularity = |t: &mut Table<'_, '_>, d: &mut Diags| {
        t.opt_choice(d, "granularity", &["year", "month", "day", "hour"])
            .map_or(Granularity::Hour, |g| match g.value.as_str() {
                "year" => Granularity::Year,
                "month" => Granularity::Month,
                "day" => Granularity::Day,
                _ => Granularity::Hour,
            })
    };
    let template = |t: &mut Table<'_, '_>, d: &mut Diags| {
        let tpl = t.opt_str(d, "template")?;
        match check_template(&tpl.value) {
            Ok(()) => Some(tpl),
            Err(msg) => {
                d.push(tpl.span.clone(), &tpl.key, msg);
                None
            }
        }
    };
    let column = |t: &mut Table<'_, '_>, d: &mut Diags| t.req_str(d, "column");
    Some(match by.value.as_str() {
        "none" => PartitionConfig::None,
        "ingest_time" => PartitionConfig::IngestTime {
            granularity: granularity(t, d),
            template: template(t, d),
        },
        "event_time" => {
            let column = column(t, d);
            let granularity = granularity(t, d);
            let template = template(t, d);
            PartitionConfig::EventTime {
                column: column?,
                granularity,
                template,
            }
        }
        _ => {
            let column = column(t, d);
            let keep_column = t.opt_bool(d, "keep_column").is_some_and(|k| k.value);
            PartitionConfig::Field {
                column: column?,
                keep_column,
            }
        }
    })
}

/// `name`: letters, digits, `-` and `_`, unique (checked by the caller), not the dead
/// letters' name.
fn read_name(t: &mut Table<'_, '_>, d: &mut Diags, default_name: String) -> Located<String> {
    let name = t.opt_str(d, "name").unwrap_or_else(|| Located {
        value: default_name,
        span: t.span(),
        key: t.key().to_owned(),
    });
    if name.value == crate::config::RESERVED_SINK_NAME
        || name.value.is_empty()
        || !name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        d.push(
            name.span.clone(),
            &name.key,
            format!(
                "expected a name of letters, digits, `-` and `_` other than `{}`, found \"{}\"",
                crate::config::RESERVED_SINK_NAME,
                name.value
            ),
        );
    }
    name
}

/// `format`: `parquet` (default) or `raw`, which a `type = "parquet"` sink cannot take.
fn read_format(t: &mut Table<'_, '_>, d: &mut Diags, kind: Option<&Located<String>>) -> SinkFormat {
    let format = t.opt_choice(d, "format", &["parquet", "raw"]);
    if let (Some(k), Some(f)) = (kind, &format)
        && k.value == "parquet"
        && f.value != "parquet"
    {
        d.push(
            f.span.clone(),
            &f.key,
            format!(
                "a `type = \"parquet\"` sink writes Parquet: use `type = \"local\"` with `format = \"{}\"`",
                f.value
            ),
        );
    }
    match format.as_ref().map(|f| f.value.as_str()) {
        Some("raw") => SinkFormat::Raw,
        _ => SinkFormat::Parquet,
    }
}
