//! Resolving the config against the input schema, with no data: every check `describe`
//! makes (each error at the key path it is about), producing the `main` schema and what
//! `process` needs: column positions, the window arithmetic and the aggregate kinds.
//!
//! `main` is `window_start`, `window_end` (timestamp µs UTC, non-null), the `group_by`
//! columns as in the input, then the aggregates in order: `count` int64 non-null, `sum`
//! int64 over integers and float64 over floats, `avg` float64, `min`/`max`/`first`/`last`
//! the input column's type; all but `count` nullable.

use std::collections::HashSet;
use std::sync::Arc;

use sluice_sdk::ConfigError;
use sluice_sdk::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::config::{AggFn, AggregateConfig, Config, Duration, WindowConfig, WindowKind};
use crate::value::Kind;
use crate::window::Windowing;

/// Name of the first output column.
pub const WINDOW_START: &str = "window_start";
/// Name of the second output column.
pub const WINDOW_END: &str = "window_end";

/// The checked config.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `main` output schema.
    pub main: SchemaRef,
    /// Where event time comes from.
    pub time: TimeColumn,
    /// Which windows a row belongs to.
    pub windowing: Windowing,
    /// Allowed lateness in microseconds (≥ 0).
    pub lateness: i64,
    /// The `group_by` columns, in order.
    pub keys: Vec<KeyColumn>,
    /// The aggregates, in order.
    pub aggregates: Vec<Aggregate>,
}

/// The event-time column and how its values become microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeColumn {
    /// Position in the input.
    pub index: usize,
    /// The column's unit.
    pub unit: TimeUnit,
}

/// One `group_by` column.
#[derive(Debug, Clone)]
pub struct KeyColumn {
    /// Position in the input.
    pub index: usize,
    /// Its values' kind.
    pub kind: Kind,
    /// Its type, which the output column keeps.
    pub data_type: DataType,
}

/// One aggregate.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The function.
    pub func: AggFn,
    /// The input column's position and kind; `None` for `count` of rows.
    pub input: Option<(usize, Kind)>,
    /// The result's kind.
    pub output_kind: Kind,
    /// The result's column type.
    pub output_type: DataType,
}

impl Plan {
    /// Check `cfg` against `input`.
    pub fn build(cfg: &Config, input: &Schema) -> Result<Plan, ConfigError> {
        let time = time_column(&cfg.time_column, input)?;
        let windowing = windowing(&cfg.window).map_err(|e| e.under(["window"]))?;
        let lateness = cfg.allowed_lateness.map_or(0, |d| d.micros);
        if lateness < 0 {
            return Err(ConfigError::at(["allowed_lateness"], "must not be negative"));
        }

        let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
        let mut fields = vec![
            Field::new(WINDOW_START, timestamp.clone(), false),
            Field::new(WINDOW_END, timestamp, false),
        ];
        let mut names: HashSet<String> = [WINDOW_START, WINDOW_END].map(str::to_owned).into();
        let mut keys = Vec::with_capacity(cfg.group_by.len());
        for (i, name) in cfg.group_by.iter().enumerate() {
            let at = ["group_by".to_owned(), i.to_string()];
            let index = find(input, name).map_err(|m| ConfigError::at(at.clone(), m))?;
            let field = input.field(index);
            let data_type = field.data_type().clone();
            let kind = match Kind::of(&data_type) {
                Some(kind @ (Kind::Str | Kind::Int | Kind::UInt | Kind::Bool)) if !is_temporal(&data_type) => kind,
                _ => {
                    return Err(ConfigError::at(
                        at,
                        format!(
                            "cannot group by column {name:?} of type {data_type}: expected a string, integer or boolean column"
                        ),
                    ));
                }
            };
            if !names.insert(name.clone()) {
                return Err(ConfigError::at(at, clash(name, "")));
            }
            fields.push(field.as_ref().clone());
            keys.push(KeyColumn { index, kind, data_type });
        }

        let mut aggregates = Vec::with_capacity(cfg.aggregates.len());
        for (i, agg) in cfg.aggregates.iter().enumerate() {
            let (aggregate, field) =
                aggregate(agg, input).map_err(|e| e.under(["aggregates".to_owned(), i.to_string()]))?;
            if !names.insert(field.name().clone()) {
                let path: Vec<String> = match agg.name {
                    Some(_) => vec!["aggregates".into(), i.to_string(), "as".into()],
                    None => vec!["aggregates".into(), i.to_string()],
                };
                return Err(ConfigError::at(
                    path,
                    clash(field.name(), "; name this aggregate with `as`"),
                ));
            }
            fields.push(field);
            aggregates.push(aggregate);
        }

        Ok(Plan {
            main: Arc::new(Schema::new(fields)),
            time,
            windowing,
            lateness,
            keys,
            aggregates,
        })
    }
}

fn time_column(name: &str, input: &Schema) -> Result<TimeColumn, ConfigError> {
    let index = find(input, name).map_err(|m| ConfigError::at(["time_column"], m))?;
    let unit = match input.field(index).data_type() {
        DataType::Timestamp(unit, _) => *unit,
        DataType::Int64 => TimeUnit::Millisecond,
        other => {
            return Err(ConfigError::at(
                ["time_column"],
                format!(
                    "column {name:?} has type {other}: expected a timestamp, or int64 milliseconds since the epoch"
                ),
            ));
        }
    };
    Ok(TimeColumn { index, unit })
}

fn windowing(cfg: &WindowConfig) -> Result<Windowing, ConfigError> {
    let kind = match cfg.kind {
        WindowKind::Tumbling => "tumbling",
        WindowKind::Hopping => "hopping",
        WindowKind::Session => "session",
    };
    let forbid = |key: &str, value: Option<Duration>, only: &str| match value {
        Some(_) => Err(ConfigError::at(
            [key],
            format!("a {kind} window has no `{key}` (only {only} windows do)"),
        )),
        None => Ok(()),
    };
    let positive = |key: &str, value: Option<Duration>| match value {
        None => Err(ConfigError::at([key], format!("a {kind} window needs `{key}`"))),
        Some(d) if d.micros <= 0 => Err(ConfigError::at([key], "must be positive")),
        Some(d) => Ok(d.micros),
    };
    let offset = |step: i64, of: &str| -> Result<i64, ConfigError> {
        let offset = cfg.offset.map_or(0, |d| d.micros);
        if offset.unsigned_abs() >= step.unsigned_abs() {
            return Err(ConfigError::at(
                ["offset"],
                format!("must be shorter than `{of}` (either sign)"),
            ));
        }
        Ok(offset)
    };
    match cfg.kind {
        WindowKind::Tumbling => {
            forbid("slide", cfg.slide, "hopping")?;
            forbid("gap", cfg.gap, "session")?;
            let size = positive("size", cfg.size)?;
            Ok(Windowing::Tumbling {
                size,
                offset: offset(size, "size")?,
            })
        }
        WindowKind::Hopping => {
            forbid("gap", cfg.gap, "session")?;
            let size = positive("size", cfg.size)?;
            let slide = positive("slide", cfg.slide)?;
            if slide > size {
                return Err(ConfigError::at(["slide"], "must not be longer than `size`"));
            }
            Ok(Windowing::Hopping {
                size,
                slide,
                offset: offset(slide, "slide")?,
            })
        }
        WindowKind::Session => {
            forbid("size", cfg.size, "tumbling and hopping")?;
            forbid("slide", cfg.slide, "hopping")?;
            forbid("offset", cfg.offset, "tumbling and hopping")?;
            Ok(Windowing::Session {
                gap: positive("gap", cfg.gap)?,
            })
        }
    }
}

/// One aggregate and its output field; errors are relative to the aggregate's table.
fn aggregate(cfg: &AggregateConfig, input: &Schema) -> Result<(Aggregate, Field), ConfigError> {
    let func = cfg.func;
    let column = match (&cfg.column, func) {
        (None, AggFn::Count) => None,
        (None, _) => {
            return Err(ConfigError::at(
                ["column"],
                format!("`{}` needs a `column`", func.name()),
            ));
        }
        (Some(name), _) => Some(find(input, name).map_err(|m| ConfigError::at(["column"], m))?),
    };
    let input_field = column.map(|index| input.field(index));
    let input_kind = match input_field {
        None => None,
        Some(field) => Some(accepted_kind(func, field.data_type()).ok_or_else(|| {
            ConfigError::at(
                ["column"],
                format!(
                    "`{}` cannot aggregate column {:?} of type {}: expected {}",
                    func.name(),
                    field.name(),
                    field.data_type(),
                    expected(func)
                ),
            )
        })?),
    };
    let (output_kind, output_type) = match (func, input_kind, input_field) {
        (AggFn::Count, _, _) => (Kind::Int, DataType::Int64),
        (AggFn::Sum, Some(Kind::Int | Kind::UInt), _) => (Kind::Int, DataType::Int64),
        (AggFn::Sum | AggFn::Avg, _, _) => (Kind::Float, DataType::Float64),
        (_, Some(kind), Some(field)) => (kind, field.data_type().clone()),
        // Invariant: every function but `count` has a column by now.
        (_, _, _) => return Err(ConfigError::at(["column"], "missing column")),
    };
    let name = match (&cfg.name, input_field) {
        (Some(name), _) => name.clone(),
        (None, Some(field)) => format!("{}_{}", func.name(), field.name()),
        (None, None) => func.name().to_owned(),
    };
    if name.is_empty() {
        return Err(ConfigError::at(["as"], "must not be empty"));
    }
    let field = Field::new(name, output_type.clone(), func != AggFn::Count);
    let aggregate = Aggregate {
        func,
        input: column.zip(input_kind),
        output_kind,
        output_type,
    };
    Ok((aggregate, field))
}

/// The kind of `data_type` if `func` can aggregate it.
fn accepted_kind(func: AggFn, data_type: &DataType) -> Option<Kind> {
    let kind = Kind::of(data_type)?;
    let numeric = matches!(kind, Kind::Int | Kind::UInt | Kind::Float) && !is_temporal(data_type);
    let ok = match func {
        AggFn::Count | AggFn::First | AggFn::Last => true,
        AggFn::Sum | AggFn::Avg => numeric,
        AggFn::Min | AggFn::Max => numeric || kind == Kind::Str || is_temporal(data_type),
    };
    ok.then_some(kind)
}

fn expected(func: AggFn) -> &'static str {
    match func {
        AggFn::Sum | AggFn::Avg => "an integer or float column",
        AggFn::Min | AggFn::Max => "a numeric, string, timestamp or date column",
        AggFn::Count | AggFn::First | AggFn::Last => {
            "a boolean, integer, float, string, binary, timestamp or date column"
        }
    }
}

fn is_temporal(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    )
}

fn find(input: &Schema, name: &str) -> Result<usize, String> {
    input.index_of(name).map_err(|_| {
        let available: Vec<String> = input.fields().iter().map(|f| format!("{:?}", f.name())).collect();
        format!("unknown column {name:?}; available columns: {}", available.join(", "))
    })
}

fn clash(name: &str, hint: &str) -> String {
    format!("output column {name:?} appears twice (`window_start` and `window_end` are always there){hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_wider_than_the_grid_are_refused_at_offset() {
        let cfg: WindowConfig = serde_json::from_str(r#"{"type":"tumbling","size":"1m","offset":"-1m"}"#).unwrap();
        let err = windowing(&cfg).unwrap_err();
        assert_eq!(err.path, ["offset"]);
        let cfg: WindowConfig =
            serde_json::from_str(r#"{"type":"hopping","size":"1m","slide":"10s","offset":"9s"}"#).unwrap();
        assert_eq!(
            windowing(&cfg).unwrap(),
            Windowing::Hopping {
                size: 60_000_000,
                slide: 10_000_000,
                offset: 9_000_000
            }
        );
    }
}
