//! `[[transform]]` tables.

use std::path::Path;
use std::time::Duration;

use super::diagnostic::Diags;
use super::reader::{Located, Table};
use super::*;

pub(super) fn read_transform(
    t: &mut Table<'_, '_>,
    d: &mut Diags,
    base: &Path,
    names: &mut Vec<String>,
) -> Option<TransformConfig> {
    let name = t.req_str(d, "name");
    if let Some(n) = &name {
        if names.contains(&n.value) {
            d.push(
                n.span.clone(),
                &n.key,
                format!("duplicate transform name \"{}\": names must be unique", n.value),
            );
        }
        names.push(n.value.clone());
    }
    let plugin = read_plugin_ref(t, d, base);
    let config_key = t.child_key("config");
    let config = match t.raw("config") {
        Some(v) => PluginConfig::from_toml(v, config_key, d),
        None => Some(PluginConfig::empty(t.span(), config_key)),
    };
    let on_error = t
        .opt_choice(d, "on_error", &["dead_letter", "skip_batch", "halt"])
        .map_or(OnError::DeadLetter, |c| match c.value.as_str() {
            "skip_batch" => OnError::SkipBatch,
            "halt" => OnError::Halt,
            _ => OnError::DeadLetter,
        });
    let quarantine_after = t
        .opt_uint(d, "quarantine_after", 1..=1_000_000)
        .map_or(5, |v| v.value as u32);
    let watermark = read_watermark(t, d);
    let limits = read_limits(t, d);
    let sha256 = read_sha256(t, d, plugin.as_ref());
    let discard_state = t
        .opt_choice(d, "state", &["keep", "discard"])
        .is_some_and(|c| c.value == "discard");
    Some(TransformConfig {
        name: name?,
        plugin: plugin?,
        config: config?,
        on_error,
        limits,
        quarantine_after,
        watermark,
        sha256,
        discard_state,
    })
}

/// `plugin = "map"` (stock) or `component = "x.wasm"` (a file), exactly one.
fn read_plugin_ref(t: &mut Table<'_, '_>, d: &mut Diags, base: &Path) -> Option<Located<PluginRef>> {
    let stock = t.opt_str(d, "plugin");
    let file = t.opt_str(d, "component");
    match (stock, file) {
        (Some(s), None) => Some(Located {
            value: PluginRef::Stock(s.value),
            span: s.span,
            key: s.key,
        }),
        (None, Some(f)) => Some(Located {
            value: PluginRef::File(resolve(base, &f.value)),
            span: f.span,
            key: f.key,
        }),
        (Some(_), Some(f)) => {
            d.push(
                f.span,
                &f.key,
                "give either `plugin` (a stock plugin) or `component` (a .wasm file), not both",
            );
            None
        }
        (None, None) => {
            if t.raw("plugin").is_none() && t.raw("component").is_none() {
                d.push(
                    t.span(),
                    &t.child_key("plugin"),
                    "missing key `plugin` (a stock plugin name) or `component` (a path to a .wasm component)",
                );
            }
            None
        }
    }
}

/// `watermark = { column, max_out_of_orderness, idle_timeout }`.
fn read_watermark(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<WatermarkConfig> {
    t.opt_table(d, "watermark").and_then(|mut w| {
        let column = w.req_str(d, "column");
        let day = Duration::from_secs(24 * 3600);
        let ooo = w.opt_duration(d, "max_out_of_orderness", Duration::ZERO..=day);
        let idle = w.opt_duration(d, "idle_timeout", Duration::from_millis(10)..=day);
        w.finish(d);
        Some(WatermarkConfig {
            column: column?,
            max_out_of_orderness: ooo.map_or(Duration::ZERO, |v| v.value),
            idle_timeout: idle.map(|v| v.value),
        })
    })
}

/// `limits = { memory_mb, timeout_ms, max_output_ratio, fuel }`.
fn read_limits(t: &mut Table<'_, '_>, d: &mut Diags) -> LimitsConfig {
    match t.opt_table(d, "limits") {
        Some(mut l) => {
            let limits = LimitsConfig {
                memory_mb: l.opt_uint(d, "memory_mb", 1..=65_536).map(|v| v.value),
                timeout_ms: l.opt_uint(d, "timeout_ms", 10..=86_400_000).map(|v| v.value),
                max_output_ratio: l.opt_uint(d, "max_output_ratio", 1..=1_000_000).map(|v| v.value),
                fuel: l.opt_uint(d, "fuel", 1_000..=u64::MAX / 2).map(|v| v.value),
            };
            l.finish(d);
            limits
        }
        None => LimitsConfig::default(),
    }
}

/// `sha256`: a component file's pinned digest (lower-cased).
fn read_sha256(t: &mut Table<'_, '_>, d: &mut Diags, plugin: Option<&Located<PluginRef>>) -> Option<Located<String>> {
    let sha256 = t.opt_str(d, "sha256");
    if let Some(h) = &sha256 {
        let ok = h.value.len() == 64 && h.value.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            d.push(
                h.span.clone(),
                &h.key,
                format!("expected 64 hexadecimal digits (a SHA-256), found \"{}\"", h.value),
            );
        }
        if matches!(plugin.map(|p| &p.value), Some(PluginRef::Stock(_))) {
            d.push(
                h.span.clone(),
                &h.key,
                "sha256 pins a `component` file; stock plugins are part of the binary",
            );
        }
    }
    sha256.map(|h| Located {
        value: h.value.to_ascii_lowercase(),
        ..h
    })
}
