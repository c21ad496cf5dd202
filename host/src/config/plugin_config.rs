//! A transform's `config` table: handed to the plugin as JSON (the plugin owns its typing),
//! while the host keeps where each key was written so a plugin's error points at the line.

use std::ops::Range;

use serde_json::{Map, Number, Value};
use toml::Spanned;
use toml::de::DeValue;

use super::diagnostic::Diags;

/// The config of one transform, opaque to the host except for positions.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    json: String,
    /// Key paths inside the table (array positions as numbers) and their byte spans.
    spans: Vec<(Vec<String>, Range<usize>)>,
    /// Span of the whole table (or of the transform when it has no `config`).
    span: Range<usize>,
    key: String,
}

impl PluginConfig {
    /// An empty config for a transform written without a `config` table.
    pub(crate) fn empty(span: Range<usize>, key: String) -> Self {
        PluginConfig {
            json: "{}".to_owned(),
            spans: Vec::new(),
            span,
            key,
        }
    }

    pub(crate) fn from_toml(value: &Spanned<DeValue<'_>>, key: String, d: &mut Diags) -> Option<Self> {
        let mut spans = Vec::new();
        let mut path = Vec::new();
        let json = to_json(value, &mut path, &mut spans, &key, d)?;
        if !json.is_object() {
            d.push(value.span(), &key, "expected a table");
            return None;
        }
        Some(PluginConfig {
            json: json.to_string(),
            spans,
            span: value.span(),
            key,
        })
    }

    /// The config as JSON text, as the WIT `describe`/`open` take it.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Span and dotted key of the deepest written key along `path`.
    pub fn locate(&self, path: &[String]) -> (Range<usize>, String) {
        let mut key = self.key.clone();
        for seg in path {
            if seg.parse::<usize>().is_ok() {
                key.push_str(&format!("[{seg}]"));
            } else {
                key.push('.');
                key.push_str(seg);
            }
        }
        for len in (1..=path.len()).rev() {
            if let Some((_, span)) = self.spans.iter().find(|(p, _)| p.as_slice() == &path[..len]) {
                return (span.clone(), key);
            }
        }
        (self.span.clone(), key)
    }
}

fn to_json(
    value: &Spanned<DeValue<'_>>,
    path: &mut Vec<String>,
    spans: &mut Vec<(Vec<String>, Range<usize>)>,
    key: &str,
    d: &mut Diags,
) -> Option<Value> {
    if !path.is_empty() {
        spans.push((path.clone(), value.span()));
    }
    Some(match value.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            match i64::from_str_radix(digits.trim_start_matches("+"), i.radix()) {
                Ok(n) => Value::Number(n.into()),
                Err(_) => {
                    d.push(
                        value.span(),
                        key,
                        format!("integer {} does not fit in 64 bits", i.as_str()),
                    );
                    return None;
                }
            }
        }
        DeValue::Float(f) => {
            let parsed: Option<f64> = f.as_str().replace('_', "").parse().ok();
            match parsed.and_then(Number::from_f64) {
                Some(n) => Value::Number(n),
                None => {
                    d.push(
                        value.span(),
                        key,
                        format!("float {} is not a finite number", f.as_str()),
                    );
                    return None;
                }
            }
        }
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(dt) => Value::String(dt.to_string()),
        DeValue::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                let v = to_json(item, path, spans, key, d);
                path.pop();
                out.push(v?);
            }
            Value::Array(out)
        }
        DeValue::Table(t) => {
            let mut out = Map::new();
            for (k, v) in t.iter() {
                // The key itself is where "unknown key" errors should point.
                path.push(k.get_ref().to_string());
                spans.push((path.clone(), k.span()));
                let json = to_json(v, path, spans, key, d);
                path.pop();
                out.insert(k.get_ref().to_string(), json?);
            }
            Value::Object(out)
        }
    })
}

/// Any TOML value as JSON (test cases' inputs and expectations), errors reported at `key`.
pub(crate) fn value_to_json(value: &Spanned<DeValue<'_>>, key: &str, d: &mut Diags) -> Option<Value> {
    to_json(value, &mut Vec::new(), &mut Vec::new(), key, d)
}
