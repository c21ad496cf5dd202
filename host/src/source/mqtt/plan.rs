//! Planning an MQTT source from its config: the URL, TLS material (loaded now, so
//! `sluice validate` finds bad files), the schema with the topic column.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};

use super::{MqttSettings, MqttSpec, tls};
use crate::config::{Diagnostic, MqttSourceConfig, PipelineConfig};
use crate::source::{PlannedSource, arrow_schema};

/// Plan an MQTT source: its settings (TLS material loaded, so `validate` finds bad files),
/// and the declared schema plus the topic column.
pub fn plan(cfg: &PipelineConfig, m: &MqttSourceConfig, diags: &mut Vec<Diagnostic>) -> Option<PlannedSource> {
    let (tls, host, port) = match MqttSettings::parse_url(&m.url.value) {
        Ok(parts) => parts,
        Err(e) => {
            diags.push(Diagnostic {
                span: m.url.span.clone(),
                key: m.url.key.clone(),
                message: e,
            });
            return None;
        }
    };
    if !tls && let Some(f) = m.ca_file.as_ref().or(m.cert_file.as_ref()) {
        diags.push(Diagnostic {
            span: f.span.clone(),
            key: f.key.clone(),
            message: format!("TLS files are set but {} is plain TCP: use mqtts://", m.url.value),
        });
    }
    let tls = tls.then(|| tls::TlsFiles {
        ca_file: m.ca_file.as_ref().map(|f| f.value.clone()),
        client: m
            .cert_file
            .as_ref()
            .zip(m.key_file.as_ref())
            .map(|(c, k)| (c.value.clone(), k.value.clone())),
    });
    // Bad TLS material is found now, by `sluice validate` too, naming the file.
    if let Some(files) = &tls
        && let Err(e) = tls::client_config(files)
    {
        let (span, key) = [&m.ca_file, &m.cert_file, &m.key_file]
            .into_iter()
            .flatten()
            .find(|f| f.value.display().to_string() == e.path)
            .map_or((m.url.span.clone(), m.url.key.clone()), |f| {
                (f.span.clone(), f.key.clone())
            });
        diags.push(Diagnostic {
            span,
            key,
            message: e.to_string(),
        });
    }
    let mut fields: Vec<Field> = arrow_schema(&m.schema)
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if let Some(c) = &m.topic_column {
        if fields.iter().any(|f| f.name() == &c.name) {
            diags.push(Diagnostic {
                span: m.url.span.clone(),
                key: "source.topic_column".into(),
                message: format!(
                    "topic_column `{}` is also a column of [source.schema]: pick another name",
                    c.name
                ),
            });
        }
        fields.insert(0, Field::new(&c.name, DataType::Utf8, c.level.is_some()));
    }
    if !cfg.checkpoint.enabled && m.qos == 1 {
        diags.push(Diagnostic {
            span: m.url.span.clone(),
            key: "checkpoint.enabled".into(),
            message: "an MQTT source at QoS 1 acknowledges messages when a checkpoint commits: checkpoints cannot be disabled".into(),
        });
    }
    let settings = MqttSettings {
        url: m.url.value.clone(),
        host,
        port,
        tls,
        topics: m.topics.value.clone(),
        client_id: m.client_id.clone().unwrap_or_else(|| format!("sluice-{}", cfg.name)),
        qos: m.qos,
        clean_session: m.clean_session,
        credentials: m.username.clone().map(|u| (u, m.password.clone().unwrap_or_default())),
        keep_alive: m.keep_alive,
        max_latency: m.max_latency,
        batch_rows: m.batch_rows,
        max_inflight: m.max_inflight,
        max_message_bytes: m.max_message_bytes,
        include_retained: m.include_retained,
        connect_attempts: m.connect_attempts,
        topic_column: m.topic_column.as_ref().map(|c| (c.name.clone(), c.level)),
    };
    Some(PlannedSource {
        spec: Arc::new(MqttSpec(Arc::new(settings))),
        schema: Arc::new(Schema::new(fields)),
    })
}
