//! The source kinds, and how a pipeline file's `[source]` becomes a planned source.
//!
//! Adding a kind: a module in this folder with its spec (a [`SourceSpec`]), its reader (a
//! [`super::Source`]) and a `plan` function from its config, a variant of
//! `config::SourceConfig` with its reader in `config`, and one line in [`plan`] below.

use super::PlannedSource;
use crate::config::{Diagnostic, MetadataConfig, PipelineConfig, SourceConfig};
use crate::decode::metadata::Metadata;

/// The planned source with its metadata columns.
#[derive(Debug, Clone)]
pub struct WithMetadata {
    /// The source.
    pub source: PlannedSource,
    /// The metadata columns, appended after the decoded ones.
    pub metadata: Metadata,
}

/// Plan the pipeline's source; every problem found becomes a diagnostic.
pub fn plan(cfg: &PipelineConfig, diags: &mut Vec<Diagnostic>) -> Option<WithMetadata> {
    let source = match &cfg.source {
        SourceConfig::File(f) => super::file::plan(f, diags),
        SourceConfig::Mqtt(m) => super::mqtt::plan(cfg, m, diags),
        SourceConfig::Datagen(g) => super::datagen::plan(g, diags),
        SourceConfig::Kinesis(k) => super::kinesis::plan(k, diags),
    }?;
    let metadata = metadata(&cfg.source_metadata, &source, diags)?;
    Some(WithMetadata { source, metadata })
}

/// Check the metadata columns against what the kind knows and the decoded columns.
fn metadata(cfg: &MetadataConfig, source: &PlannedSource, diags: &mut Vec<Diagnostic>) -> Option<Metadata> {
    let kind = source.spec.kind();
    let known: &[&str] = match kind {
        "file" => &["file", "partition", "ingest_time"],
        "mqtt" => &["topic", "partition", "ingest_time"],
        "kinesis" => &[
            "shard",
            "sequence",
            "partition_key",
            "arrival",
            "partition",
            "ingest_time",
        ],
        _ => &["partition", "ingest_time"],
    };
    let mut ok = true;
    let mut taken: Vec<&str> = source.schema.fields().iter().map(|f| f.name().as_str()).collect();
    for (what, column) in [
        ("file", &cfg.file),
        ("topic", &cfg.topic),
        ("partition", &cfg.partition),
        ("ingest_time", &cfg.ingest_time),
        ("shard", &cfg.shard),
        ("sequence", &cfg.sequence),
        ("partition_key", &cfg.partition_key),
        ("arrival", &cfg.arrival),
    ] {
        let Some(c) = column else { continue };
        let problem = if !known.contains(&what) {
            Some(format!(
                "a {kind} source has no `{what}` to put in a column: it offers {}",
                known.join(", ")
            ))
        } else if taken.contains(&c.value.as_str()) {
            Some(format!(
                "column `{}` is already a column of the source: pick another name",
                c.value
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            diags.push(Diagnostic {
                span: c.span.clone(),
                key: c.key.clone(),
                message,
            });
            ok = false;
        }
        taken.push(&c.value);
    }
    let name = |c: &Option<crate::config::Located<String>>| c.as_ref().map(|c| c.value.clone());
    ok.then(|| Metadata {
        file: name(&cfg.file),
        topic: name(&cfg.topic),
        partition: name(&cfg.partition),
        ingest_time: name(&cfg.ingest_time),
        shard: name(&cfg.shard),
        sequence: name(&cfg.sequence),
        partition_key: name(&cfg.partition_key),
        arrival: name(&cfg.arrival),
    })
}
