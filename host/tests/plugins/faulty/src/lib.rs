//! A deliberately hostile transform for the host's tests. It passes batches through
//! unchanged, except that a batch holding `marker` in column `column` (`"*"`: every batch)
//! makes it misbehave as `mode` says: trap, error, loop forever, allocate without bound,
//! overflow its stack, return bytes that are not Arrow, return the wrong schema, return
//! 1000× its input, or probe for the filesystem, environment and clock (and report what it
//! got as an error; the network is `netprobe`'s, as its import alone gets it refused). It implements the WIT bindings directly, not through the SDK's
//! trait, so it can break the contract in ways the SDK would refuse.

// Everything here is reached only through the wasm exports.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

// The plain `transformer` world: no optional `keyed-state`.
wit_bindgen::generate!({
    world: "transformer",
    path: "../../../../wit",
});

use std::cell::RefCell;
use std::sync::Arc;

use exports::sluice::transform::transform::{
    ConfigError, Description, Guest, OutputBatch, ProcessError, RestoreError, StateSnapshot,
};
use sluice::transform::types::OutputDecl;
use sluice_sdk::arrow::array::{AsArray, Int32Array, RecordBatch};
use sluice_sdk::arrow::datatypes::{DataType, Field, Schema};
use sluice_sdk::{decode_batch, decode_schema, encode_batch, encode_schema};

#[derive(serde::Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    column: String,
    marker: String,
}

#[derive(serde::Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Trap,
    Error,
    Loop,
    Alloc,
    Stack,
    Malformed,
    WrongSchema,
    Amplify,
    Probe,
}

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

fn config(json: &str) -> Result<Config, ConfigError> {
    serde_json::from_str(json).map_err(|e| ConfigError {
        path: Vec::new(),
        message: e.to_string(),
    })
}

fn hit(cfg: &Config, batch: &RecordBatch) -> bool {
    if cfg.marker == "*" {
        return true;
    }
    let Ok(i) = batch.schema().index_of(&cfg.column) else {
        return false;
    };
    batch
        .column(i)
        .as_string::<i32>()
        .iter()
        .any(|v| v == Some(cfg.marker.as_str()))
}

#[inline(never)]
#[allow(unconditional_recursion)] // overflowing the stack is the point
fn recurse(depth: u64, pad: &mut [u8; 256]) -> u64 {
    pad[(depth % 256) as usize] = depth as u8;
    let mut next = [0u8; 256];
    recurse(depth + 1, &mut next) + u64::from(pad[0])
}

fn probe() -> String {
    let fs = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("READ {} bytes", text.len()),
        Err(e) => format!("denied ({e})"),
    };
    let env = match std::env::var("HOME") {
        Ok(v) => format!("READ {v}"),
        Err(_) => "denied".to_owned(),
    };
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("probe: fs={fs} env={env} clock={clock}")
}

fn misbehave(cfg: &Config, batch: &RecordBatch, bytes: Vec<u8>) -> Result<Vec<OutputBatch>, ProcessError> {
    let out = |batch: Vec<u8>| OutputBatch {
        output: "main".to_owned(),
        batch,
    };
    match cfg.mode {
        Mode::Trap => panic!("marker {} seen", cfg.marker),
        Mode::Error => Err(ProcessError::Failed(format!("marker {} seen", cfg.marker))),
        Mode::Loop => loop {
            std::hint::black_box(&bytes);
        },
        Mode::Alloc => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Mode::Stack => {
            let mut pad = [0u8; 256];
            Err(ProcessError::Failed(format!("unreachable {}", recurse(0, &mut pad))))
        }
        Mode::Malformed => Ok(vec![out(b"this is not an Arrow IPC stream".to_vec())]),
        Mode::WrongSchema => {
            let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
            let wrong = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2, 3]))])
                .map_err(|e| ProcessError::Failed(e.to_string()))?;
            Ok(vec![out(
                encode_batch(&wrong).map_err(|e| ProcessError::Failed(e.to_string()))?
            )])
        }
        Mode::Amplify => Ok((0..1000).map(|_| out(bytes.clone())).collect()),
        Mode::Probe => {
            let _ = batch;
            Err(ProcessError::Failed(probe()))
        }
    }
}

struct Faulty;

impl Guest for Faulty {
    fn describe(config_json: String, input: Vec<u8>) -> Result<Description, ConfigError> {
        let cfg = config(&config_json)?;
        let schema = decode_schema(&input).map_err(|e| ConfigError {
            path: Vec::new(),
            message: e.to_string(),
        })?;
        if cfg.marker != "*"
            && schema
                .field_with_name(&cfg.column)
                .map(|f| f.data_type() != &DataType::Utf8)
                .unwrap_or(true)
        {
            return Err(ConfigError {
                path: vec!["column".into()],
                message: "expected a string column".into(),
            });
        }
        let schema = encode_schema(&schema).map_err(|e| ConfigError {
            path: Vec::new(),
            message: e.to_string(),
        })?;
        Ok(Description {
            outputs: vec![OutputDecl {
                name: "main".into(),
                schema,
            }],
            state_format: None,
        })
    }

    fn open(config_json: String, _input: Vec<u8>) -> Result<(), ConfigError> {
        let cfg = config(&config_json)?;
        CONFIG.with(|c| *c.borrow_mut() = Some(cfg));
        Ok(())
    }

    fn process(bytes: Vec<u8>) -> Result<Vec<OutputBatch>, ProcessError> {
        let cfg = CONFIG
            .with(|c| c.borrow().clone())
            .ok_or_else(|| ProcessError::Failed("not opened".into()))?;
        let batch = decode_batch(bytes.clone()).map_err(|e| ProcessError::InvalidInput(e.to_string()))?;
        if hit(&cfg, &batch) {
            return misbehave(&cfg, &batch, bytes);
        }
        Ok(vec![OutputBatch {
            output: "main".to_owned(),
            batch: bytes,
        }])
    }

    fn advance_watermark(_watermark: i64) -> Result<Vec<OutputBatch>, ProcessError> {
        Ok(Vec::new())
    }

    fn finish() -> Result<Vec<OutputBatch>, ProcessError> {
        Ok(Vec::new())
    }

    fn snapshot() -> Result<Option<StateSnapshot>, String> {
        Ok(None)
    }

    fn restore(state: StateSnapshot) -> Result<(), RestoreError> {
        Err(RestoreError::UnsupportedVersion(state.format_version))
    }
}

#[cfg(target_arch = "wasm32")]
export!(Faulty);
