//! Hive-style partition paths: which folder each row of a batch belongs in.
//!
//! Pure: from a batch (and the batch's ingest time) to `(relative folder, rows)` pairs.
//! Work is per batch: rows are bucketed by integer arithmetic on their timestamps or by
//! their values, and a template is rendered once per distinct bucket, never per row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use chrono::{DateTime, Datelike, Timelike};

use crate::config::{Diagnostic, Granularity, Located, PartitionConfig};

/// Hive's folder value for a null partition value.
pub const NULL_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

/// The longest folder name most file systems take (ext4, XFS, APFS, NTFS: 255 bytes); S3
/// keys hold 1024 bytes in all, so one folder of this size leaves room for the rest.
pub const MAX_FOLDER_BYTES: usize = 255;

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// The default template for a granularity, with `prefix` (`ingest_` for Glue's names).
pub fn default_template(prefix: &str, granularity: Granularity) -> String {
    let parts = [("year", "%Y"), ("month", "%m"), ("day", "%d"), ("hour", "%H")];
    let depth = granularity as usize + 1;
    parts[..depth]
        .iter()
        .map(|(name, f)| format!("{prefix}{name}={f}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// The finest time unit a template mentions.
fn template_unit(template: &str) -> Granularity {
    if template.contains("%H") {
        Granularity::Hour
    } else if template.contains("%d") {
        Granularity::Day
    } else if template.contains("%m") {
        Granularity::Month
    } else {
        Granularity::Year
    }
}

fn render(template: &str, micros: Option<i64>) -> String {
    let time = micros.and_then(DateTime::from_timestamp_micros);
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next();
        match (spec, time) {
            (Some('%'), _) => out.push('%'),
            (_, None) => out.push_str(NULL_VALUE),
            (Some('Y'), Some(t)) => out.push_str(&format!("{:04}", t.year())),
            (Some('m'), Some(t)) => out.push_str(&format!("{:02}", t.month())),
            (Some('d'), Some(t)) => out.push_str(&format!("{:02}", t.day())),
            (Some('H'), Some(t)) => out.push_str(&format!("{:02}", t.hour())),
            _ => {}
        }
    }
    out
}

/// Escape a value for a folder name as Hive does (`/`, `=`, `%`, … as `%XX`).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || "\"#%'*/:=?\\{[]^".contains(c) {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() { NULL_VALUE.to_owned() } else { out }
}

/// How a sink spreads the rows of a batch over folders.
#[derive(Debug, Clone, PartialEq)]
pub enum Partitioner {
    /// Everything in the sink's folder.
    None,
    /// By the batch's ingest time.
    IngestTime {
        /// Folder template.
        template: String,
    },
    /// By a timestamp column.
    EventTime {
        /// Index of the column in the batch.
        column: usize,
        /// Folder template.
        template: String,
    },
    /// By a column's value.
    Field {
        /// Index of the column in the batch.
        column: usize,
        /// The column's name (`name=value` folders).
        name: String,
        /// Keep the column in the files.
        keep_column: bool,
    },
}

impl Partitioner {
    /// The schema of the rows written into files, given the schema of incoming batches.
    pub fn file_schema(&self, input: &SchemaRef) -> SchemaRef {
        match self {
            Partitioner::Field {
                column,
                keep_column: false,
                ..
            } => {
                let fields: Vec<_> = input
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i != column)
                    .map(|(_, f)| f.clone())
                    .collect();
                Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
            }
            _ => input.clone(),
        }
    }

    /// The folder of records read at `ingest_micros`, for partitioners that look at nothing
    /// else (the raw archive's); `""` for none.
    pub fn ingest_folder(&self, ingest_micros: i64) -> String {
        match self {
            Partitioner::IngestTime { template } => render(template, Some(ingest_micros)),
            _ => String::new(),
        }
    }

    /// Rows whose value cannot name a folder (too long once escaped), with the reason: they
    /// go to dead letters rather than stop the pipeline on every run.
    pub fn misfits(&self, batch: &RecordBatch) -> Result<Vec<(u32, String)>, ArrowError> {
        let Partitioner::Field { column, name, .. } = self else {
            return Ok(Vec::new());
        };
        let values: ArrayRef = cast(batch.column(*column), &DataType::Utf8)?;
        let values = values.as_string::<i32>();
        let name_bytes = escape_value(name).len() + 1;
        let mut misfits = Vec::new();
        for (row, value) in values.iter().enumerate() {
            let Some(v) = value else { continue };
            // Escaping at most triples a value: most are checked without escaping them.
            if name_bytes + 3 * v.len() <= MAX_FOLDER_BYTES {
                continue;
            }
            let folder = name_bytes + escape_value(v).len();
            if folder > MAX_FOLDER_BYTES {
                misfits.push((
                    row as u32,
                    format!(
                        "partition value of {name} cannot name a folder: {} is {folder} bytes as `{name}=…`, more than {MAX_FOLDER_BYTES}",
                        crate::record::quoted(v)
                    ),
                ));
            }
        }
        Ok(misfits)
    }

    /// Split a batch into `(folder, rows)` pairs; the folder is relative, `""` for none.
    pub fn split(&self, batch: &RecordBatch, ingest_micros: i64) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
        match self {
            Partitioner::None => Ok(vec![(String::new(), batch.clone())]),
            Partitioner::IngestTime { template } => Ok(vec![(render(template, Some(ingest_micros)), batch.clone())]),
            Partitioner::EventTime { column, template } => split_by_time(batch, *column, template),
            Partitioner::Field {
                column,
                name,
                keep_column,
            } => {
                let parts = split_by_value(batch, *column, name)?;
                if *keep_column {
                    return Ok(parts);
                }
                parts
                    .into_iter()
                    .map(|(dir, mut b)| {
                        b.remove_column(*column);
                        Ok((dir, b))
                    })
                    .collect()
            }
        }
    }
}

/// How rows of `schema` are spread over folders.
pub fn plan(cfg: &PartitionConfig, schema: &SchemaRef, diags: &mut Vec<Diagnostic>) -> Option<Partitioner> {
    let column =
        |name: &Located<String>, diags: &mut Vec<Diagnostic>, ok: &dyn Fn(&DataType) -> bool, expected: &str| {
            let at = |message: String| Diagnostic {
                span: name.span.clone(),
                key: name.key.clone(),
                message,
            };
            match schema.index_of(&name.value) {
                Ok(i) if ok(schema.field(i).data_type()) => Some(i),
                Ok(i) => {
                    diags.push(at(format!(
                        "column \"{}\" is {}, expected {expected}",
                        name.value,
                        schema.field(i).data_type()
                    )));
                    None
                }
                Err(_) => {
                    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    diags.push(at(format!(
                        "no column \"{}\" in the pipeline's output; it has {}",
                        name.value,
                        names.join(", ")
                    )));
                    None
                }
            }
        };
    Some(match cfg {
        PartitionConfig::None => Partitioner::None,
        PartitionConfig::IngestTime { granularity, template } => Partitioner::IngestTime {
            template: template
                .as_ref()
                .map_or_else(|| default_template("ingest_", *granularity), |t| t.value.clone()),
        },
        PartitionConfig::EventTime {
            column: name,
            granularity,
            template,
        } => {
            let is_time = |t: &DataType| matches!(t, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64);
            Partitioner::EventTime {
                column: column(name, diags, &is_time, "a timestamp or date column")?,
                template: template
                    .as_ref()
                    .map_or_else(|| default_template("", *granularity), |t| t.value.clone()),
            }
        }
        PartitionConfig::Field {
            column: name,
            keep_column,
        } => {
            let is_key = |t: &DataType| {
                matches!(
                    t,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Boolean | DataType::Date32
                ) || t.is_integer()
            };
            Partitioner::Field {
                column: column(name, diags, &is_key, "a string, integer, boolean or date column")?,
                name: name.value.clone(),
                keep_column: *keep_column,
            }
        }
    })
}

/// Take the rows of each group, skipping the copy when one group holds the whole batch.
fn gather(batch: &RecordBatch, groups: Vec<(String, Vec<u32>)>) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
    if groups.len() == 1 {
        let (dir, _) = groups.into_iter().next().expect("one group");
        return Ok(vec![(dir, batch.clone())]);
    }
    groups
        .into_iter()
        .map(|(dir, rows)| Ok((dir, take_record_batch(batch, &UInt32Array::from(rows))?)))
        .collect()
}

/// Merge buckets whose folders render the same (e.g. days of one month), keeping first-seen order.
fn merge(buckets: Vec<(String, Vec<u32>)>) -> Vec<(String, Vec<u32>)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(String, Vec<u32>)> = Vec::new();
    for (dir, rows) in buckets {
        match index.get(&dir) {
            Some(&i) => out[i].1.extend(rows),
            None => {
                index.insert(dir.clone(), out.len());
                out.push((dir, rows));
            }
        }
    }
    for (_, rows) in &mut out {
        rows.sort_unstable();
    }
    out
}

fn split_by_time(batch: &RecordBatch, column: usize, template: &str) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let micros = cast(batch.column(column), &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    let micros = micros.as_primitive::<TimestampMicrosecondType>();
    // Hours (or days) are the buckets; months and years are merged after rendering.
    let step = if template_unit(template) == Granularity::Hour {
        MICROS_PER_HOUR
    } else {
        MICROS_PER_DAY
    };
    let mut order: Vec<Option<i64>> = Vec::new();
    let mut buckets: HashMap<Option<i64>, Vec<u32>> = HashMap::new();
    for (row, value) in micros.iter().enumerate() {
        let key = value.map(|v| v.div_euclid(step));
        buckets
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(row as u32);
    }
    let rendered = order
        .into_iter()
        .map(|key| {
            let rows = buckets.remove(&key).unwrap_or_default();
            (render(template, key.map(|k| k * step)), rows)
        })
        .collect();
    gather(batch, merge(rendered))
}

fn split_by_value(batch: &RecordBatch, column: usize, name: &str) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let values: ArrayRef = cast(batch.column(column), &DataType::Utf8)?;
    let values = values.as_string::<i32>();
    let mut order: Vec<Option<&str>> = Vec::new();
    let mut groups: HashMap<Option<&str>, Vec<u32>> = HashMap::new();
    for (row, value) in values.iter().enumerate() {
        groups
            .entry(value)
            .or_insert_with(|| {
                order.push(value);
                Vec::new()
            })
            .push(row as u32);
    }
    let name = escape_value(name);
    let groups = order
        .into_iter()
        .map(|v| {
            let rows = groups.remove(&v).unwrap_or_default();
            (
                format!("{name}={}", v.map_or_else(|| NULL_VALUE.to_owned(), escape_value)),
                rows,
            )
        })
        .collect();
    gather(batch, groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::Field;

    fn micros(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .expect("time")
            .and_utc()
            .timestamp_micros()
    }

    fn batch(times: Vec<Option<i64>>, tickers: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("ticker", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let n = times.len() as i64;
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from(times)),
                Arc::new(StringArray::from(tickers)),
                Arc::new(Int64Array::from_iter_values(0..n)),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn default_templates_use_glue_ingest_names_down_to_the_granularity() {
        assert_eq!(
            default_template("ingest_", Granularity::Hour),
            "ingest_year=%Y/ingest_month=%m/ingest_day=%d/ingest_hour=%H"
        );
        assert_eq!(default_template("", Granularity::Month), "year=%Y/month=%m");
    }

    #[test]
    fn ingest_time_puts_the_whole_batch_in_one_zero_padded_folder() {
        let p = Partitioner::IngestTime {
            template: default_template("ingest_", Granularity::Hour),
        };
        let b = batch(vec![Some(0)], vec![Some("A")]);
        let parts = p.split(&b, micros("2020-04-06 09:33:23")).expect("split");
        assert_eq!(parts.len(), 1);
        assert_eq!(
            parts[0].0,
            "ingest_year=2020/ingest_month=04/ingest_day=06/ingest_hour=09"
        );
    }

    #[test]
    fn event_time_groups_rows_by_hour_and_keeps_row_order_within_a_folder() {
        let p = Partitioner::EventTime {
            column: 0,
            template: default_template("", Granularity::Hour),
        };
        let b = batch(
            vec![
                Some(micros("2021-05-01 12:59:59")),
                Some(micros("2021-05-01 13:00:00")),
                None,
                Some(micros("2021-05-01 12:00:00")),
            ],
            vec![Some("A"); 4],
        );
        let parts = p.split(&b, 0).expect("split");
        let summary: Vec<(String, Vec<i64>)> = parts
            .iter()
            .map(|(d, b)| {
                (
                    d.clone(),
                    b.column(2)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("year=2021/month=05/day=01/hour=12".to_owned(), vec![0, 3]),
                ("year=2021/month=05/day=01/hour=13".to_owned(), vec![1]),
                (
                    format!("year={NULL_VALUE}/month={NULL_VALUE}/day={NULL_VALUE}/hour={NULL_VALUE}"),
                    vec![2]
                ),
            ]
        );
    }

    #[test]
    fn month_templates_merge_days_of_the_same_month() {
        let p = Partitioner::EventTime {
            column: 0,
            template: "dt=%Y-%m".into(),
        };
        let b = batch(
            vec![
                Some(micros("2021-05-01 00:00:00")),
                Some(micros("2021-05-31 23:00:00")),
                Some(micros("2021-06-01 00:00:00")),
            ],
            vec![Some("A"); 3],
        );
        let dirs: Vec<(String, usize)> = p
            .split(&b, 0)
            .expect("split")
            .into_iter()
            .map(|(d, b)| (d, b.num_rows()))
            .collect();
        assert_eq!(dirs, vec![("dt=2021-05".to_owned(), 2), ("dt=2021-06".to_owned(), 1)]);
    }

    #[test]
    fn values_too_long_for_a_folder_are_misfits_with_a_short_reason() {
        let p = Partitioner::Field {
            column: 1,
            name: "ticker".into(),
            keep_column: false,
        };
        let long = "x".repeat(10_000);
        let slashes = "/".repeat(90);
        let fits = "y".repeat(248);
        let b = batch(
            vec![Some(0); 5],
            vec![Some("MSFT"), Some(&long), None, Some(&slashes), Some(&fits)],
        );
        let misfits = p.misfits(&b).expect("misfits");
        let rows: Vec<u32> = misfits.iter().map(|(r, _)| *r).collect();
        assert_eq!(rows, [1, 3], "{misfits:?}");
        assert!(
            misfits[0]
                .1
                .starts_with("partition value of ticker cannot name a folder: \"xxx"),
            "{}",
            misfits[0].1
        );
        assert!(misfits[0].1.len() < 200, "{}", misfits[0].1);
        assert!(misfits[1].1.contains("277 bytes"), "{}", misfits[1].1);
        assert!(
            p.misfits(&batch(vec![Some(0)], vec![Some("A")]))
                .expect("none")
                .is_empty()
        );
    }

    #[test]
    fn field_partitions_escape_values_and_drop_the_column_by_default() {
        let p = Partitioner::Field {
            column: 1,
            name: "ticker".into(),
            keep_column: false,
        };
        let b = batch(vec![Some(0); 4], vec![Some("AMZN"), Some("a/b"), None, Some("AMZN")]);
        let parts = p.split(&b, 0).expect("split");
        let dirs: Vec<(&str, usize, usize)> = parts
            .iter()
            .map(|(d, b)| (d.as_str(), b.num_rows(), b.num_columns()))
            .collect();
        assert_eq!(
            dirs,
            vec![
                ("ticker=AMZN", 2, 2),
                ("ticker=a%2Fb", 1, 2),
                ("ticker=__HIVE_DEFAULT_PARTITION__", 1, 2)
            ]
        );
        assert_eq!(p.file_schema(&b.schema()).fields().len(), 2);
    }
}
