//! `describe`: the declared outputs, and every config error at its key path.

use sluice_sdk::arrow::datatypes::TimeUnit;

use super::*;

/// Declared outputs: name and schema.
type Declared = Vec<(String, Schema)>;

fn describe(config: &str, schema: &Schema) -> Result<Declared, (Vec<String>, String)> {
    let input = encode_schema(schema).unwrap();
    match __private::describe::<Anomaly>(config.to_owned(), input) {
        Ok(description) => {
            assert_eq!(description.state_format, Some(2));
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

/// The error path of `config` over `schema`, checking the message mentions `needle`.
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

/// The error path of `config(rest)` over the readings, checking the message.
fn refused(rest: &str, needle: &str) -> Vec<String> {
    refused_with(&config(rest), &wide_schema(), needle)
}

/// Readings plus columns of other types.
fn wide_schema() -> Schema {
    let mut fields: Vec<Field> = readings_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("ok", DataType::Boolean, true));
    fields.push(Field::new("ratio", DataType::Float32, true));
    fields.push(Field::new("shard", DataType::UInt16, true));
    Schema::new(fields)
}

fn with_flag_and_score(input: &Schema) -> Schema {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("is_anomaly", DataType::Boolean, false));
    fields.push(Field::new("anomaly_score", DataType::Float64, true));
    Schema::new(fields)
}

#[test]
fn flag_declares_main_as_the_input_plus_flag_and_score() {
    let outputs = describe(&config(""), &wide_schema()).unwrap();
    assert_eq!(outputs, [("main".to_owned(), with_flag_and_score(&wide_schema()))]);
}

#[test]
fn split_also_declares_anomalies_with_the_same_schema() {
    let outputs = describe(&config(r#""route":"split""#), &readings_schema()).unwrap();
    let expected = with_flag_and_score(&readings_schema());
    assert_eq!(
        outputs,
        [
            ("main".to_owned(), expected.clone()),
            ("anomalies".to_owned(), expected)
        ]
    );
}

#[test]
fn keys_and_values_of_every_accepted_type_are_accepted() {
    for key in ["seq", "device", "shard"] {
        for value in ["temp", "ratio", "shard", "seq"] {
            if key == value {
                continue;
            }
            let config = format!(r#"{{"key":"{key}","value":"{value}"}}"#);
            assert!(describe(&config, &wide_schema()).is_ok(), "{config}");
        }
    }
    assert!(describe(r#"{"value":"temp"}"#, &wide_schema()).is_ok(), "no key");
}

#[test]
fn unknown_or_unsuitable_columns_are_refused_at_their_key() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"key":"dev","value":"temp"}"#, "unknown column \"dev\"", "key"),
        (
            r#"{"key":"temp","value":"seq"}"#,
            "expected a string or integer column",
            "key",
        ),
        (
            r#"{"key":"ok","value":"temp"}"#,
            "expected a string or integer column",
            "key",
        ),
        (r#"{"key":"device","value":"tmp"}"#, "unknown column \"tmp\"", "value"),
        (
            r#"{"key":"device","value":"device"}"#,
            "expected an integer or float column",
            "value",
        ),
        (
            r#"{"key":"device","value":"ok"}"#,
            "expected an integer or float column",
            "value",
        ),
        (r#"{"key":"seq","value":"seq"}"#, "is also the `key`", "value"),
    ];
    for (config, needle, key) in cases {
        assert_eq!(refused_with(config, &wide_schema(), needle), path(&[key]), "{config}");
    }
    let p = refused_with(
        r#"{"key":"device","value":"tmp"}"#,
        &wide_schema(),
        "available columns: \"seq\"",
    );
    assert_eq!(p, path(&["value"]));
}

#[test]
fn alpha_must_lie_in_the_half_open_unit_interval() {
    for bad in ["0", "0.0", "-0.1", "1.0000001", "2"] {
        assert_eq!(
            refused(&format!(r#""alpha":{bad}"#), "must be in (0, 1]"),
            path(&["alpha"]),
            "{bad}"
        );
    }
    for good in ["1", "0.5", "1e-9"] {
        assert!(describe(&config(&format!(r#""alpha":{good}"#)), &wide_schema()).is_ok());
    }
}

#[test]
fn options_of_the_other_method_are_refused_at_their_key() {
    let p = refused(
        r#""window":30"#,
        "belongs to method \"zscore\", but the method is \"ewma\" (the default)",
    );
    assert_eq!(p, path(&["window"]));
    let p = refused(r#""method":"ewma","window":30"#, "belongs to method \"zscore\"");
    assert_eq!(p, path(&["window"]));
    let p = refused(
        r#""method":"zscore","alpha":0.2"#,
        "belongs to method \"ewma\", but the method is \"zscore\"",
    );
    assert_eq!(p, path(&["alpha"]));
}

#[test]
fn the_window_must_hold_at_least_two_values_and_not_too_many() {
    for bad in ["0", "1", "100001"] {
        let p = refused(&format!(r#""method":"zscore","window":{bad}"#), "between 2 and 100000");
        assert_eq!(p, path(&["window"]), "{bad}");
    }
    assert!(describe(&config(r#""method":"zscore","window":2"#), &wide_schema()).is_ok());
}

#[test]
fn threshold_and_max_keys_must_be_positive() {
    for bad in ["0", "-1", "0.0"] {
        assert_eq!(
            refused(&format!(r#""threshold":{bad}"#), "must be a positive number"),
            path(&["threshold"])
        );
    }
    assert_eq!(refused(r#""max_keys":0"#, "at least 1"), path(&["max_keys"]));
}

#[test]
fn reset_after_belongs_to_anomalies_that_do_not_update() {
    let p = refused(
        r#""update_on_anomaly":true,"reset_after":3"#,
        "applies only with `update_on_anomaly = false`",
    );
    assert_eq!(p, path(&["reset_after"]));
    for ok in [
        r#""reset_after":0"#,
        r#""reset_after":3,"update_on_anomaly":false"#,
        r#""update_on_anomaly":true"#,
    ] {
        assert!(describe(&config(ok), &wide_schema()).is_ok(), "{ok}");
    }
}

#[test]
fn shapes_are_refused_at_their_key_by_the_sdk() {
    let cases: &[(&str, &str, &[&str])] = &[
        (r#""method":"mad""#, "unknown variant `mad`", &["method"]),
        (r#""route":"drop""#, "unknown variant `drop`", &["route"]),
        (r#""warmup":-1"#, "invalid value", &["warmup"]),
        (r#""max_keys":1.5"#, "invalid type", &["max_keys"]),
        (r#""update_on_anomaly":"yes""#, "invalid type", &["update_on_anomaly"]),
        (r#""threshold":"high""#, "invalid type", &["threshold"]),
        (r#""treshold":3"#, "unknown field `treshold`", &["treshold"]),
        (r#""reset_after":-2"#, "invalid value", &["reset_after"]),
    ];
    for (rest, needle, at) in cases {
        assert_eq!(refused(rest, needle), path(at), "{rest}");
    }
    assert_eq!(
        refused_with(r#"{"key":"device"}"#, &wide_schema(), "missing field `value`"),
        Vec::<String>::new()
    );
}

#[test]
fn an_input_column_named_like_an_added_column_is_refused() {
    for name in ["is_anomaly", "anomaly_score"] {
        let mut fields: Vec<Field> = readings_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(name, DataType::Float64, true));
        let p = refused_with(
            &config(""),
            &Schema::new(fields),
            &format!("already has a column {name:?}"),
        );
        assert!(p.is_empty(), "about the input schema as a whole: {p:?}");
    }
}

/// The readings plus timestamp columns of every unit, with and without a zone.
fn timed_schema() -> Schema {
    let mut fields: Vec<Field> = wide_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("at_s", DataType::Timestamp(TimeUnit::Second, None), true));
    fields.push(Field::new(
        "at_ms",
        DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
        true,
    ));
    fields.push(Field::new(
        "at_us",
        DataType::Timestamp(TimeUnit::Microsecond, None),
        true,
    ));
    fields.push(Field::new(
        "at_ns",
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    ));
    fields.push(Field::new("day", DataType::Date32, true));
    Schema::new(fields)
}

fn refused_timed(rest: &str, needle: &str) -> Vec<String> {
    refused_with(&config(rest), &timed_schema(), needle)
}

#[test]
fn expire_after_takes_a_timestamp_time_column_of_any_unit_and_zone() {
    for column in ["at_s", "at_ms", "at_us", "at_ns"] {
        for after in ["500ms", "30s", "5m", "1h", "2d", "1h30m"] {
            let rest = format!(r#""time_column":"{column}","expire_after":"{after}""#);
            let outputs = describe(&config(&rest), &timed_schema()).unwrap();
            assert_eq!(outputs[0].1, with_flag_and_score(&timed_schema()), "{rest}");
        }
    }
}

#[test]
fn expire_after_without_a_time_column_is_refused_and_so_is_the_reverse() {
    let p = refused_timed(r#""expire_after":"1h""#, "needs `time_column`");
    assert_eq!(p, path(&["expire_after"]));
    let p = refused_timed(r#""time_column":"at_ms""#, "has no effect without `expire_after`");
    assert_eq!(p, path(&["time_column"]));
}

#[test]
fn the_time_column_must_exist_and_be_a_timestamp() {
    let p = refused_timed(r#""time_column":"when","expire_after":"1h""#, "unknown column \"when\"");
    assert_eq!(p, path(&["time_column"]));
    for (column, typ) in [
        ("temp", "Float64"),
        ("seq", "Int64"),
        ("device", "Utf8"),
        ("day", "Date32"),
    ] {
        let p = refused_timed(
            &format!(r#""time_column":"{column}","expire_after":"1h""#),
            &format!("column \"{column}\" has type {typ}: expected a timestamp column"),
        );
        assert_eq!(p, path(&["time_column"]), "{column}");
    }
}

#[test]
fn expire_after_must_be_a_positive_duration() {
    for bad in ["soon", "1", "1.5h", "-1h", "1 h", "1w", "30m1h", ""] {
        let p = refused_timed(
            &format!(r#""time_column":"at_ms","expire_after":"{bad}""#),
            "invalid duration",
        );
        assert_eq!(p, path(&["expire_after"]), "{bad:?}");
    }
    let p = refused_timed(r#""time_column":"at_ms","expire_after":3600"#, "invalid type");
    assert_eq!(p, path(&["expire_after"]));
    for zero in ["0s", "0h0m", "0ms"] {
        let p = refused_timed(
            &format!(r#""time_column":"at_ms","expire_after":"{zero}""#),
            "must be longer than 0",
        );
        assert_eq!(p, path(&["expire_after"]), "{zero}");
    }
}

/// The columns the detector says it reads, by name.
fn reads(config: &str, schema: &Schema) -> Vec<String> {
    __private::reads::<Anomaly>(config.to_owned(), encode_schema(schema).unwrap())
        .unwrap_or_else(|e| panic!("{config}: {}", e.message))
        .expect("the detector names the columns it reads")
}

#[test]
fn it_reads_the_key_value_and_time_columns_only() {
    let wide = Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("device", DataType::Utf8, true),
        Field::new("temp", DataType::Float64, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]);
    assert_eq!(reads(&config(""), &wide), ["device", "temp"]);
    assert_eq!(reads(r#"{"value":"temp"}"#, &wide), ["temp"]);
    let expiring = config(r#""time_column":"at","expire_after":"1h""#);
    assert_eq!(reads(&expiring, &wide), ["device", "temp", "at"]);
    // A config it refuses is refused here too, at the same key.
    let e = __private::reads::<Anomaly>(config(r#""threshold":-1"#), encode_schema(&wide).unwrap()).unwrap_err();
    assert_eq!(e.path, ["threshold"]);
}

#[test]
fn sent_only_the_columns_it_reads_it_scores_the_same_and_adds_the_same_columns() {
    let batches = [
        series(
            "a",
            0,
            &[20.0, 20.5, 19.5, 20.0, 20.2, 19.8, 20.1, 19.9, 20.0, 20.3, 20.1, 35.0],
        ),
        series("b", 100, &[5.0, 5.1, 4.9, 5.0, 5.2, 4.8, 5.0, 5.1, 4.9, 5.0, 5.0, -9.0]),
    ];
    let whole = run(&config(""), &batches);
    // The host's narrower input: device and temp, in input order.
    let narrow_schema = readings_schema().project(&[1, 2]).unwrap();
    let declared = describe(&config(""), &narrow_schema).unwrap();
    let wide = describe(&config(""), &readings_schema()).unwrap();
    assert_eq!(
        declared[0].1.fields()[2..],
        wide[0].1.fields()[3..],
        "the same added columns"
    );
    open(&config(""), &narrow_schema);
    let mut scored = Vec::new();
    for batch in &batches {
        let narrow = batch.project(&[1, 2]).unwrap();
        for (output, rows) in process_raw_narrow(&narrow) {
            assert_eq!(output, "main");
            scored.extend(rows);
        }
    }
    let expected: Vec<Scored> = whole.main.iter().map(|r| (r.flag, r.score)).collect();
    assert!(expected.iter().any(|r| r.0), "the series have anomalies");
    assert_eq!(scored, expected);
}

/// A scored row: flag and score.
type Scored = (bool, Option<f64>);

/// Flags and scores a narrow batch's call emitted, per output; each output row names its
/// input row in order.
fn process_raw_narrow(batch: &RecordBatch) -> Vec<(String, Vec<Scored>)> {
    let outputs = __private::process::<Anomaly>(encode_batch(batch).unwrap()).unwrap();
    outputs
        .into_iter()
        .map(|o| {
            let (rows, lineage) = host_batch(&o.output, decode_batch(o.batch).unwrap());
            let lineage = lineage.unwrap();
            assert_eq!(
                lineage.values().to_vec(),
                (0..batch.num_rows() as u32).collect::<Vec<_>>()
            );
            let flags = rows.column_by_name(crate::IS_ANOMALY).unwrap().as_boolean();
            let scores = rows
                .column_by_name(crate::ANOMALY_SCORE)
                .unwrap()
                .as_primitive::<Float64Type>();
            let scored = (0..rows.num_rows())
                .map(|i| (flags.value(i), scores.is_valid(i).then(|| scores.value(i))))
                .collect();
            (o.output, scored)
        })
        .collect()
}
