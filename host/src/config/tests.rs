use std::path::Path;

use super::*;

fn parse_ok(text: &str) -> PipelineConfig {
    match parse(text, Path::new("p.toml"), Path::new("/base"), "p") {
        Ok(c) => c.config,
        Err(e) => panic!("{e}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse(text, Path::new("p.toml"), Path::new("/base"), "p") {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

const MINIMAL: &str = r#"
[source]
type = "file"
path = "data/*.ndjson"

[sink]
type = "parquet"
path = "../out"
"#;

#[test]
fn a_minimal_file_gets_documented_defaults_and_resolved_paths() {
    let c = parse_ok(MINIMAL);
    assert_eq!(c.name, "p");
    let SourceConfig::File(f) = &c.source else {
        panic!("a file source")
    };
    assert_eq!(f.resolved.as_deref(), Some(Path::new("/base/data/*.ndjson")));
    assert_eq!(f.batch_rows, 8192);
    assert!(f.schema.is_none());
    assert_eq!(c.sinks[0].place, Place::Local("/out".into()));
    assert_eq!(c.sinks[0].compression, Compression::Snappy);
    assert_eq!(c.sinks[0].target_file_bytes, 128 * 1024 * 1024);
    assert!(matches!(c.sinks[0].partition, PartitionConfig::None));
    assert_eq!(c.dead_letter.place, Place::Local("/out/_dead_letter".into()));
}

#[test]
fn a_declared_schema_keeps_the_written_column_order() {
    let c = parse_ok(
        &format!("{MINIMAL}\n[source.schema]\nzeta = \"string\"\nalpha = {{ type = \"double\", nullable = false }}\n")
            .replace("[sink]", "[sink]"),
    );
    let SourceConfig::File(f) = &c.source else {
        panic!("a file source")
    };
    let schema = f.schema.as_ref().expect("schema");
    assert_eq!(schema[0].name, "zeta");
    assert_eq!(schema[0].ty.value, FieldType::Utf8);
    assert_eq!(schema[1].name, "alpha");
    assert_eq!(schema[1].ty.value, FieldType::Float64);
    assert!(!schema[1].nullable);
}

#[test]
fn every_problem_is_reported_with_line_and_key() {
    let text = r#"
[source]
type = "kafka"
path = 3
batch_rows = 0

[sink]
type = "parquet"
path = "out"
compresion = "zstd"
"#;
    let err = parse_err(text);
    assert!(
        err.contains(
            "p.toml:3:8: `source.type`: expected one of `file`, `mqtt`, `datagen`, `kinesis`, found \"kafka\""
        ),
        "{err}"
    );
    assert!(
        err.contains("p.toml:4:8: `source.path`: expected a string, found the integer 3"),
        "{err}"
    );
    assert!(
        err.contains("p.toml:5:14: `source.batch_rows`: expected an integer from 1 to 1048576, found 0"),
        "{err}"
    );
    assert!(
        err.contains("p.toml:10:1: `sink.compresion`: unknown key `compresion`: expected one of"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 4, "{err}");
}

#[test]
fn transforms_keep_their_config_as_json_and_locate_keys() {
    let c = parse_ok(&format!(
        "{MINIMAL}\n[[transform]]\nname = \"f\"\nplugin = \"filter\"\nconfig.predicate = \"a > 1\"\n\n[[transform]]\nname = \"m\"\ncomponent = \"x.wasm\"\n[transform.config]\nmappings = [{{ from = \"a\" }}, {{ from = \"b\", type = \"int\" }}]\n"
    ));
    assert_eq!(c.transforms.len(), 2);
    assert_eq!(c.transforms[0].plugin.value, PluginRef::Stock("filter".into()));
    assert_eq!(c.transforms[0].config.json(), r#"{"predicate":"a > 1"}"#);
    assert_eq!(c.transforms[1].plugin.value, PluginRef::File("/base/x.wasm".into()));
    let (span, key) = c.transforms[1]
        .config
        .locate(&["mappings".into(), "1".into(), "type".into()]);
    assert_eq!(key, "transform[1].config.mappings[1].type");
    let text = format!(
        "{MINIMAL}\n[[transform]]\nname = \"f\"\nplugin = \"filter\"\nconfig.predicate = \"a > 1\"\n\n[[transform]]\nname = \"m\"\ncomponent = \"x.wasm\"\n[transform.config]\nmappings = [{{ from = \"a\" }}, {{ from = \"b\", type = \"int\" }}]\n"
    );
    assert_eq!(&text[span], "type");
}

#[test]
fn duplicate_transform_names_and_missing_plugins_are_errors() {
    let err = parse_err(&format!(
        "{MINIMAL}\n[[transform]]\nname = \"a\"\nplugin = \"map\"\n[[transform]]\nname = \"a\"\n"
    ));
    assert!(
        err.contains("`transform[1].name`: duplicate transform name \"a\""),
        "{err}"
    );
    assert!(err.contains("`transform[1].plugin`: missing key `plugin`"), "{err}");
}

#[test]
fn invalid_toml_is_reported_at_its_line() {
    let err = parse_err("[source]\ntype = \n");
    assert!(err.starts_with("p.toml:2:"), "{err}");
    assert!(err.contains("invalid TOML"), "{err}");
}

#[test]
fn partitions_parse_for_each_kind() {
    let c = parse_ok(&MINIMAL.replace(
        "path = \"../out\"",
        "path = \"../out\"\npartition = { by = \"event_time\", column = \"event_time\", granularity = \"day\" }",
    ));
    assert!(matches!(
        c.sinks[0].partition,
        PartitionConfig::EventTime {
            granularity: Granularity::Day,
            ..
        }
    ));
    let c = parse_ok(&MINIMAL.replace(
        "path = \"../out\"",
        "path = \"../out\"\npartition = { by = \"field\", column = \"ticker\" }",
    ));
    assert!(matches!(
        c.sinks[0].partition,
        PartitionConfig::Field { keep_column: false, .. }
    ));
    let err = parse_err(&MINIMAL.replace(
        "path = \"../out\"",
        "path = \"../out\"\npartition = { by = \"event_time\" }",
    ));
    assert!(err.contains("`sink.partition.column`: missing key `column`"), "{err}");
}

#[test]
fn a_kinesis_source_reads_every_setting_with_documented_defaults() {
    let c = parse_ok(
        r#"
[source]
type = "kinesis"
stream = "s"
[source.schema]
a = "string"
[sink]
type = "parquet"
path = "out"
"#,
    );
    let SourceConfig::Kinesis(k) = &c.source else {
        panic!("a kinesis source")
    };
    assert_eq!(k.stream, KinesisStream::Name("s".into()));
    assert_eq!(k.start, KinesisStart::TrimHorizon);
    assert_eq!(k.consumer, KinesisConsumer::Polling);
    assert_eq!(k.decode, KinesisDecode::Json);
    assert_eq!((k.max_records, k.batch_rows), (10_000, 8192));
    assert_eq!(k.idle_poll, std::time::Duration::from_secs(1));
    assert!(!k.end_caught_up && k.region.is_none() && k.endpoint_url.is_none());

    let c = parse_ok(
        r#"
[source]
type = "kinesis"
stream_arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/logs"
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:4567"
start = { at_timestamp = "2026-01-01T00:00:01.5Z" }
consumer = { efo = "sluice-logs" }
decode = "cloudwatch_logs"
end = "caught_up"
max_records = 500
idle_poll = "250ms"
[sink]
type = "parquet"
path = "out"
"#,
    );
    let SourceConfig::Kinesis(k) = &c.source else {
        panic!("a kinesis source")
    };
    assert_eq!(
        k.stream,
        KinesisStream::Arn("arn:aws:kinesis:eu-west-1:123456789012:stream/logs".into())
    );
    assert_eq!(k.start, KinesisStart::AtTimestamp(1_767_225_601_500));
    assert_eq!(k.consumer, KinesisConsumer::Efo("sluice-logs".into()));
    assert_eq!(k.decode, KinesisDecode::CloudwatchLogs);
    assert!(k.end_caught_up && k.schema.is_none());
    assert_eq!(k.max_records, 500);
}

#[test]
fn kinesis_settings_are_refused_at_their_keys() {
    let err = parse_err(
        r#"
[source]
type = "kinesis"
stream = "s"
stream_arn = "arn:aws:kinesis:us-east-1:1:stream/s"
consumer = { efo = "has space" }
decode = "cloudwatch_logs"
[source.schema]
a = "string"
[sink]
type = "parquet"
path = "out"
"#,
    );
    assert!(
        err.contains("`source.stream_arn`: give either `stream` or `stream_arn`, not both"),
        "{err}"
    );
    assert!(err.contains("`source.consumer.efo`: expected a consumer name"), "{err}");
    assert!(
        err.contains("`source.schema`: this decode gives fixed columns"),
        "{err}"
    );
    let err = parse_err(
        r#"
[source]
type = "kinesis"
stream = "s"
[sink]
type = "parquet"
path = "out"
"#,
    );
    assert!(err.contains("needs a declared schema"), "{err}");
}

#[test]
fn the_checkpoint_store_is_a_folder_by_default_or_an_s3_prefix() {
    let c = parse_ok(MINIMAL);
    assert_eq!(c.checkpoint.store, StoreKind::File);
    assert_eq!(c.checkpoint.path, Path::new("/out/_checkpoints"));
    let c = parse_ok(&format!("{MINIMAL}\n[checkpoint]\nstore = \"file\"\n"));
    assert_eq!(c.checkpoint.store, StoreKind::File);
    let c = parse_ok(&format!(
        "{MINIMAL}\n[checkpoint]\nstore = {{ s3 = \"s3://my-bucket/pipelines/p\" }}\nregion = \"eu-west-1\"\n\
         endpoint_url = \"http://127.0.0.1:9000\"\nforce_path_style = true\n"
    ));
    assert_eq!(
        c.checkpoint.store,
        StoreKind::S3(S3Location {
            bucket: "my-bucket".into(),
            prefix: "pipelines/p/".into(),
            region: Some("eu-west-1".into()),
            endpoint_url: Some("http://127.0.0.1:9000".into()),
            force_path_style: true,
        })
    );
    let c = parse_ok(&format!(
        "{MINIMAL}\n[checkpoint]\nstore = {{ s3 = \"s3://my-bucket\" }}\n"
    ));
    let StoreKind::S3(s3) = &c.checkpoint.store else {
        panic!("an S3 store")
    };
    assert_eq!(
        (s3.prefix.as_str(), s3.region.as_deref(), s3.force_path_style),
        ("", None, false)
    );
}

#[test]
fn checkpoint_store_settings_are_refused_at_their_keys() {
    let err = parse_err(&format!(
        "{MINIMAL}\n[checkpoint]\nstore = {{ s3 = \"https://my-bucket/cp/\" }}\nendpoint_url = \"127.0.0.1:9000\"\n"
    ));
    assert!(
        err.contains(
            "p.toml:11:16: `checkpoint.store.s3`: expected an S3 URL such as \"s3://bucket/prefix/\", found \"https://my-bucket/cp/\""
        ),
        "{err}"
    );
    assert!(
        err.contains("p.toml:12:16: `checkpoint.endpoint_url`: expected an http:// or https:// URL"),
        "{err}"
    );
    let err = parse_err(&format!(
        "{MINIMAL}\n[checkpoint]\nstore = \"s3\"\nregion = \"eu-west-1\"\n"
    ));
    assert!(
        err.contains(
            "p.toml:11:9: `checkpoint.store`: expected \"file\" or { s3 = \"s3://bucket/prefix/\" }, found the string \"s3\""
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let err = parse_err(&format!("{MINIMAL}\n[checkpoint]\nforce_path_style = true\n"));
    assert!(
        err.contains("p.toml:11:20: `checkpoint.force_path_style`: only an S3 checkpoint store"),
        "{err}"
    );
    let err = parse_err(&format!(
        "{MINIMAL}\n[checkpoint]\nstore = {{ s3 = \"s3://b/cp/\", bucket = \"x\" }}\n"
    ));
    assert!(err.contains("`checkpoint.store.s3`: expected an S3 URL"), "{err}");
    assert!(
        err.contains("`checkpoint.store.bucket`: unknown key `bucket`: expected one of `s3`"),
        "{err}"
    );
}

const S3_SINK: &str = r#"
[source]
type = "file"
path = "data/*.ndjson"
[sink]
type = "s3"
bucket = "datalake"
prefix = "sensors"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:9000"
force_path_style = true
"#;

#[test]
fn an_s3_sink_keeps_its_dead_letters_and_checkpoints_beside_it() {
    let c = parse_ok(S3_SINK);
    let at = S3Location {
        bucket: "datalake".into(),
        prefix: "sensors/".into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some("http://127.0.0.1:9000".into()),
        force_path_style: true,
    };
    assert_eq!(c.sinks[0].place, Place::S3(at.clone()));
    assert_eq!(c.sinks[0].part_bytes, 8 << 20);
    assert_eq!(
        c.dead_letter.place,
        Place::S3(S3Location {
            prefix: "sensors/_dead_letter/".into(),
            ..at.clone()
        })
    );
    assert_eq!(
        c.checkpoint.store,
        StoreKind::S3(S3Location {
            prefix: "sensors/_checkpoints/".into(),
            ..at.clone()
        })
    );
    let c = parse_ok(&S3_SINK.replace(
        "force_path_style = true",
        "force_path_style = true\nerror_prefix = \"errors\"\npart_mb = 16",
    ));
    assert_eq!(
        c.dead_letter.place,
        Place::S3(S3Location {
            prefix: "errors/".into(),
            ..at.clone()
        })
    );
    assert_eq!(c.sinks[0].part_bytes, 16 << 20);
    // A Firehose prefix: fixed folders, then arrival-time folders.
    let c = parse_ok(&S3_SINK.replace(
        "prefix = \"sensors\"",
        "prefix = \"sensors/!{timestamp:'dt='yyyy-MM-dd}/\"",
    ));
    let Place::S3(loc) = &c.sinks[0].place else {
        panic!("S3")
    };
    assert_eq!(loc.prefix, "sensors/");
    let PartitionConfig::IngestTime { template: Some(t), .. } = &c.sinks[0].partition else {
        panic!("ingest time")
    };
    assert_eq!(t.value, "dt=%Y-%m-%d");
    // A file store needs a folder, which an S3 first sink does not give.
    let err = parse_err(&format!("{S3_SINK}[checkpoint]\nstore = \"file\"\n"));
    assert!(err.contains("no local folder for checkpoint files"), "{err}");
    let c = parse_ok(&format!("{S3_SINK}[checkpoint]\nstore = \"file\"\npath = \"/cp\"\n"));
    assert_eq!((c.checkpoint.store, c.checkpoint.path), (StoreKind::File, "/cp".into()));
}

#[test]
fn s3_sink_settings_are_refused_at_their_keys() {
    let err = parse_err(&S3_SINK.replace("bucket = \"datalake\"", "bucket = \"Data_Lake\"\npath = \"/out\""));
    assert!(
        err.contains("p.toml:7:10: `sink.bucket`: expected a bucket name"),
        "{err}"
    );
    assert!(err.contains("`sink.path`"), "a local sink's key on an S3 sink: {err}");
    let err = parse_err(&S3_SINK.replace("region", "error_prefix = \"e/!{firehose:error-output-type}/\"\nregion"));
    assert!(err.contains("`sink.error_prefix`: expressions"), "{err}");
    let err = parse_err(&S3_SINK.replace("prefix = \"sensors\"", "prefix = \"x/!{timestamp:YYYY}/\""));
    assert!(
        err.contains("`sink.prefix`: unsupported pattern letters `YYYY`"),
        "{err}"
    );
    let err = parse_err(&S3_SINK.replace(
        "prefix = \"sensors\"",
        "prefix = \"x/!{timestamp:yyyy}/\"\npartition = { by = \"none\" }",
    ));
    assert!(err.contains("already partitions by arrival time"), "{err}");
    let err = parse_err(&S3_SINK.replace("region", "part_mb = 4\nregion"));
    assert!(err.contains("`sink.part_mb`"), "{err}");
}

#[test]
fn telemetry_listen_is_an_address_and_port() {
    let c = parse_ok(&format!("{MINIMAL}\n[telemetry]\nlisten = \"127.0.0.1:9464\"\n"));
    let listen = c.metrics_listen.expect("listen");
    assert_eq!(listen.value, "127.0.0.1:9464".parse().expect("addr"));
    assert_eq!(listen.key, "telemetry.listen");
    assert!(parse_ok(MINIMAL).metrics_listen.is_none());
    let err = parse_err(&format!("{MINIMAL}\n[telemetry]\nlisten = \"localhost\"\nport = 1\n"));
    assert!(
        err.contains(
            "p.toml:11:10: `telemetry.listen`: expected an IP address and port such as \"127.0.0.1:9464\", found \"localhost\""
        ),
        "{err}"
    );
    assert!(
        err.contains("p.toml:12:1: `telemetry.port`: unknown key `port`"),
        "{err}"
    );
}

#[test]
fn a_console_sink_keeps_no_checkpoints_unless_given_a_folder() {
    let text = "[source]\ntype = \"file\"\npath = \"in.ndjson\"\n[sink]\ntype = \"console\"\nformat = \"table\"\n";
    let c = parse_ok(text);
    assert_eq!(c.sinks[0].format, SinkFormat::Console(ConsoleFormat::Table));
    assert_eq!(c.sinks[0].place, Place::Console);
    assert_eq!(c.dead_letter.place, Place::Console, "dead letters go to stderr");
    assert!(!c.checkpoint.enabled);
    let with = parse_ok(&format!("{text}[checkpoint]\npath = \"cp\"\n"));
    assert!(with.checkpoint.enabled);
    assert_eq!(with.checkpoint.path, Path::new("/base/cp"));
    let err = parse_err(&format!("{text}[checkpoint]\ninterval = \"1s\"\n"));
    assert!(err.contains("the first sink is the console"), "{err}");
    let err = parse_err(&text.replace("format = \"table\"", "path = \"out\""));
    assert!(err.contains("`sink.path`: unknown key `path`"), "{err}");
}
