//! `describe`: the declared outputs, and every config error at its key path.

use super::*;

/// Declared outputs: name and schema.
type Declared = Vec<(String, Schema)>;

fn describe(config: &str, schema: &Schema) -> Result<Declared, (Vec<String>, String)> {
    let input = encode_schema(schema).unwrap();
    match __private::describe::<Window>(config.to_owned(), input) {
        Ok(description) => {
            assert_eq!(description.state_format, Some(1));
            Ok(description
                .outputs
                .into_iter()
                .map(|o| {
                    let schema = host_schema(&o.name, &decode_schema(&o.schema).unwrap());
                    (o.name, schema)
                })
                .collect())
        }
        Err(e) => Err((e.path, e.message)),
    }
}

/// The error path of `config` (a fragment after `time_column`), checking the message
/// mentions `needle`.
fn refused(rest: &str, needle: &str) -> Vec<String> {
    refused_with(&config(rest), &trades_schema(), needle)
}

fn refused_with(config: &str, schema: &Schema, needle: &str) -> Vec<String> {
    match describe(config, schema) {
        Ok(outputs) => panic!("expected a config error for {config}, got {outputs:?}"),
        Err((path, message)) => {
            assert!(
                message.contains(needle),
                "{config}: message {message:?} lacks {needle:?}"
            );
            path
        }
    }
}

const TUMBLING: &str = r#""window":{"type":"tumbling","size":"5s"}"#;

#[test]
fn describe_declares_bounds_keys_and_aggregates_and_a_rejected_output_of_input_rows() {
    let config = config(
        r#""window":{"type":"tumbling","size":"1m"},"group_by":["ticker"],
           "aggregates":[{"fn":"avg","column":"price","as":"avg_price"},{"fn":"count","as":"n"},
             {"fn":"count","column":"price"},{"fn":"sum","column":"qty"},{"fn":"sum","column":"price"},
             {"fn":"min","column":"ticker"},{"fn":"max","column":"event_time"},
             {"fn":"first","column":"price"},{"fn":"last","column":"qty"}]"#,
    );
    let outputs = describe(&config, &trades_schema()).unwrap();
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let expected = Schema::new(vec![
        Field::new("window_start", micros.clone(), false),
        Field::new("window_end", micros, false),
        Field::new("ticker", DataType::Utf8, true),
        Field::new("avg_price", DataType::Float64, true),
        Field::new("n", DataType::Int64, false),
        Field::new("count_price", DataType::Int64, false),
        Field::new("sum_qty", DataType::Int64, true),
        Field::new("sum_price", DataType::Float64, true),
        Field::new("min_ticker", DataType::Utf8, true),
        Field::new("max_event_time", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("first_price", DataType::Float64, true),
        Field::new("last_qty", DataType::Int64, true),
    ]);
    assert_eq!(outputs[0], ("main".to_owned(), expected));
    let mut rejected: Vec<_> = trades_schema().fields().iter().cloned().collect();
    rejected.push(Arc::new(Field::new(REASON_COLUMN, DataType::Utf8, false)));
    assert_eq!(outputs[1], ("rejected".to_owned(), Schema::new(rejected)));
    assert_eq!(outputs.len(), 2);
}

#[test]
fn key_columns_keep_their_input_type_and_nullability() {
    let schema = Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("site", DataType::LargeUtf8, false),
        Field::new("shard", DataType::UInt16, true),
        Field::new("ok", DataType::Boolean, true),
    ]);
    let config = format!(r#"{{"time_column":"ts",{TUMBLING},"group_by":["site","shard","ok"]}}"#);
    let main = describe(&config, &schema).unwrap().remove(0).1;
    assert_eq!(&main.fields()[2..], &schema.fields()[1..]);
}

#[test]
fn the_time_column_must_exist_and_be_a_timestamp_or_int64() {
    let p = refused_with(
        &format!(r#"{{"time_column":"when",{TUMBLING}}}"#),
        &trades_schema(),
        "unknown column \"when\"",
    );
    assert_eq!(p, path(&["time_column"]));
    let p = refused_with(
        &format!(r#"{{"time_column":"ticker",{TUMBLING}}}"#),
        &trades_schema(),
        "expected a timestamp",
    );
    assert_eq!(p, path(&["time_column"]));
    let p = refused_with(
        &format!(r#"{{"time_column":"price",{TUMBLING}}}"#),
        &trades_schema(),
        "int64 milliseconds",
    );
    assert_eq!(p, path(&["time_column"]));
}

#[test]
fn window_errors_point_at_the_window_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        (r#"{"type":"tumbling"}"#, "needs `size`", &["window", "size"]),
        (
            r#"{"type":"tumbling","size":"0s"}"#,
            "must be positive",
            &["window", "size"],
        ),
        (
            r#"{"type":"tumbling","size":"-5s"}"#,
            "must be positive",
            &["window", "size"],
        ),
        (
            r#"{"type":"tumbling","size":"5s","slide":"1s"}"#,
            "only hopping",
            &["window", "slide"],
        ),
        (
            r#"{"type":"tumbling","size":"5s","gap":"1s"}"#,
            "only session",
            &["window", "gap"],
        ),
        (
            r#"{"type":"tumbling","size":"5s","offset":"5s"}"#,
            "shorter than `size`",
            &["window", "offset"],
        ),
        (
            r#"{"type":"hopping","size":"10s"}"#,
            "needs `slide`",
            &["window", "slide"],
        ),
        (
            r#"{"type":"hopping","size":"10s","slide":"0ms"}"#,
            "must be positive",
            &["window", "slide"],
        ),
        (
            r#"{"type":"hopping","size":"10s","slide":"11s"}"#,
            "not be longer than `size`",
            &["window", "slide"],
        ),
        (
            r#"{"type":"hopping","size":"10s","slide":"5s","offset":"-5s"}"#,
            "shorter than `slide`",
            &["window", "offset"],
        ),
        (r#"{"type":"session"}"#, "needs `gap`", &["window", "gap"]),
        (
            r#"{"type":"session","gap":"30s","offset":"1s"}"#,
            "no `offset`",
            &["window", "offset"],
        ),
        (
            r#"{"type":"session","gap":"30s","size":"1m"}"#,
            "no `size`",
            &["window", "size"],
        ),
        (
            r#"{"type":"tumbling","size":"5 s"}"#,
            "invalid duration",
            &["window", "size"],
        ),
        (
            r#"{"type":"tumbling","size":"1w"}"#,
            "unknown unit \"w\"",
            &["window", "size"],
        ),
        (
            r#"{"type":"sliding","size":"1m"}"#,
            "unknown variant `sliding`",
            &["window", "type"],
        ),
        (
            r#"{"type":"tumbling","size":"1m","slid":"1m"}"#,
            "unknown field `slid`",
            &["window", "slid"],
        ),
    ];
    for (window, needle, expected) in cases {
        let p = refused(&format!(r#""window":{window}"#), needle);
        assert_eq!(p, path(expected), "{window}");
    }
}

#[test]
fn group_by_errors_point_at_the_entry() {
    let p = refused(
        &format!(r#"{TUMBLING},"group_by":["ticker","desk"]"#),
        "unknown column \"desk\"",
    );
    assert_eq!(p, path(&["group_by", "1"]));
    let p = refused(
        &format!(r#"{TUMBLING},"group_by":["price"]"#),
        "cannot group by column \"price\" of type Float64",
    );
    assert_eq!(p, path(&["group_by", "0"]));
    let p = refused(
        &format!(r#"{TUMBLING},"group_by":["event_time"]"#),
        "expected a string, integer or boolean",
    );
    assert_eq!(p, path(&["group_by", "0"]));
    let p = refused(
        &format!(r#"{TUMBLING},"group_by":["ticker","ticker"]"#),
        "appears twice",
    );
    assert_eq!(p, path(&["group_by", "1"]));
}

#[test]
fn aggregate_errors_point_at_the_entry_and_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            r#"[{"fn":"count"},{"fn":"sum"}]"#,
            "`sum` needs a `column`",
            &["aggregates", "1", "column"],
        ),
        (
            r#"[{"fn":"avg","column":"volume"}]"#,
            "unknown column \"volume\"",
            &["aggregates", "0", "column"],
        ),
        (
            r#"[{"fn":"sum","column":"ticker"}]"#,
            "expected an integer or float column",
            &["aggregates", "0", "column"],
        ),
        (
            r#"[{"fn":"avg","column":"event_time"}]"#,
            "cannot aggregate column \"event_time\"",
            &["aggregates", "0", "column"],
        ),
        (
            r#"[{"fn":"median","column":"price"}]"#,
            "unknown variant `median`",
            &["aggregates", "0", "fn"],
        ),
        (
            r#"[{"fn":"max","column":"price","as":"x"},{"fn":"min","column":"price","as":"x"}]"#,
            "\"x\" appears twice",
            &["aggregates", "1", "as"],
        ),
        (
            r#"[{"fn":"count"},{"fn":"count"}]"#,
            "\"count\" appears twice",
            &["aggregates", "1"],
        ),
        (
            r#"[{"fn":"count","as":"window_end"}]"#,
            "appears twice",
            &["aggregates", "0", "as"],
        ),
        (
            r#"[{"fn":"count","as":"ticker"}]"#,
            "appears twice",
            &["aggregates", "0", "as"],
        ),
        (
            r#"[{"fn":"count","as":""}]"#,
            "must not be empty",
            &["aggregates", "0", "as"],
        ),
        (
            r#"[{"fn":"count","colum":"price"}]"#,
            "unknown field `colum`",
            &["aggregates", "0", "colum"],
        ),
    ];
    for (aggregates, needle, expected) in cases {
        let p = refused(
            &format!(r#"{TUMBLING},"group_by":["ticker"],"aggregates":{aggregates}"#),
            needle,
        );
        assert_eq!(p, path(expected), "{aggregates}");
    }
}

#[test]
fn min_and_max_refuse_booleans_but_first_and_last_take_them() {
    let schema = Schema::new(vec![
        Field::new("event_time", DataType::Int64, false),
        Field::new("ok", DataType::Boolean, true),
    ]);
    let base = format!(r#""time_column":"event_time",{TUMBLING}"#);
    let p = refused_with(
        &format!(r#"{{{base},"aggregates":[{{"fn":"min","column":"ok"}}]}}"#),
        &schema,
        "numeric, string, timestamp or date",
    );
    assert_eq!(p, path(&["aggregates", "0", "column"]));
    let ok = format!(r#"{{{base},"aggregates":[{{"fn":"first","column":"ok"}},{{"fn":"last","column":"ok"}}]}}"#);
    assert!(describe(&ok, &schema).is_ok());
}

#[test]
fn lateness_must_not_be_negative_and_unknown_keys_are_refused() {
    let p = refused(
        &format!(r#"{TUMBLING},"allowed_lateness":"-1s""#),
        "must not be negative",
    );
    assert_eq!(p, path(&["allowed_lateness"]));
    let p = refused(&format!(r#"{TUMBLING},"allowed_lateness":"soon""#), "invalid duration");
    assert_eq!(p, path(&["allowed_lateness"]));
    let p = refused(&format!(r#"{TUMBLING},"lateness":"1s""#), "unknown field `lateness`");
    assert_eq!(p, path(&["lateness"]));
    let p = refused_with(
        r#"{"window":{"type":"tumbling","size":"1s"}}"#,
        &trades_schema(),
        "missing field `time_column`",
    );
    assert!(p.is_empty(), "{p:?}");
}
