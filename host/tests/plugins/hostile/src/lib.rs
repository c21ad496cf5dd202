//! A transform written to attack the sandbox, for the host's tests (`tests/integration/
//! sandbox.rs`). It passes batches through unchanged, except as `mode` says:
//!
//! - `sleep`: `std::thread::sleep(n ms)` in every `process` (a WASI timer); `sleep_describe`:
//!   the same in `describe`, so `validate` sleeps.
//! - `spin`: logs "spinning", then a busy loop of `n` iterations in every `process`, then a
//!   failure when a row holds `marker` (to make bisection slow).
//! - `dict_bomb` / `view_bomb`: `main` is one column whose every row points at the same
//!   `n`-byte value (a dictionary, or string views sharing one buffer).
//! - `null_bomb`: `main` is one Null column; `finish` emits `n` rows of it.
//! - `wide`: declares `n` columns.
//! - `finish_amplify`: `finish` emits `n` copies of every row it saw.
//! - `exit`: calls `exit(3)` on a row holding `marker`.
//! - `bad_state`: declares state format 1, snapshots tagged 99.
//! - `log_flood`: logs `n` lines per batch, each with a newline forging a host log line.
//! - `random`: fails on `marker` with a number drawn from WASI random.
//! - `union_rejected`: declares a `rejected` output with a union column.
//!
//! It implements the WIT bindings directly, so it can break the contract, and it exports the
//! plain `transformer` world (no optional `keyed-state`), as components built by other
//! tool chains do.

// Everything here is reached only through the wasm exports.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

wit_bindgen::generate!({
    world: "transformer",
    path: "../../../../wit",
});

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Arc;

use exports::sluice::transform::transform::{
    ConfigError, Description, Guest, OutputBatch, ProcessError, RestoreError, StateSnapshot,
};
use sluice::transform::types::OutputDecl;
use sluice_sdk::arrow::array::{
    ArrayRef, AsArray, DictionaryArray, Int32Array, NullArray, RecordBatch, StringArray, StringViewArray,
};
use sluice_sdk::arrow::buffer::{Buffer, ScalarBuffer};
use sluice_sdk::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, UnionFields, UnionMode};
use sluice_sdk::{decode_batch, decode_schema, encode_batch, encode_schema};

#[derive(serde::Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    #[serde(default)]
    marker: String,
    #[serde(default)]
    n: u64,
}

#[derive(serde::Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Sleep,
    SleepDescribe,
    Spin,
    DictBomb,
    ViewBomb,
    NullBomb,
    Wide,
    FinishAmplify,
    Exit,
    BadState,
    LogFlood,
    Random,
    UnionRejected,
}

struct State {
    cfg: Config,
    input: SchemaRef,
    output: SchemaRef,
    seen: Vec<RecordBatch>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn failed(e: impl std::fmt::Display) -> ProcessError {
    ProcessError::Failed(e.to_string())
}

fn config(json: &str) -> Result<Config, ConfigError> {
    serde_json::from_str(json).map_err(|e| ConfigError {
        path: Vec::new(),
        message: e.to_string(),
    })
}

fn output_schema(cfg: &Config, input: &SchemaRef) -> SchemaRef {
    match cfg.mode {
        Mode::DictBomb => Arc::new(Schema::new(vec![Field::new(
            "blob",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        )])),
        Mode::ViewBomb => Arc::new(Schema::new(vec![Field::new("blob", DataType::Utf8View, false)])),
        Mode::NullBomb => Arc::new(Schema::new(vec![Field::new("nothing", DataType::Null, true)])),
        Mode::Wide => Arc::new(Schema::new(
            (0..cfg.n)
                .map(|i| Field::new(format!("c{i}"), DataType::Null, true))
                .collect::<Vec<_>>(),
        )),
        _ => input.clone(),
    }
}

fn has_marker(cfg: &Config, batch: &RecordBatch) -> bool {
    batch.columns().iter().any(|c| {
        c.as_string_opt::<i32>()
            .is_some_and(|s| s.iter().any(|v| v == Some(cfg.marker.as_str())))
    })
}

/// `rows` rows of one column whose every row is the same `bytes`-byte string.
fn bomb(mode: Mode, rows: usize, bytes: usize) -> ArrayRef {
    let big = "b".repeat(bytes);
    match mode {
        Mode::DictBomb => Arc::new(
            DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(vec![0; rows]),
                Arc::new(StringArray::from(vec![big.as_str()])),
            )
            .expect("keys in range"),
        ),
        _ => {
            // One buffer; every view (length, prefix, buffer 0, offset 0) points at it.
            let prefix = u32::from_le_bytes(*b"bbbb") as u128;
            let view = (bytes as u128) | (prefix << 32);
            let views = ScalarBuffer::from(vec![view; rows]);
            Arc::new(StringViewArray::new(views, vec![Buffer::from(big.into_bytes())], None))
        }
    }
}

fn out(batch: &RecordBatch) -> Result<OutputBatch, ProcessError> {
    Ok(OutputBatch {
        output: "main".to_owned(),
        batch: encode_batch(batch).map_err(failed)?,
    })
}

struct Hostile;

impl Guest for Hostile {
    fn describe(config_json: String, input: Vec<u8>) -> Result<Description, ConfigError> {
        let cfg = config(&config_json)?;
        let schema = decode_schema(&input).map_err(|e| ConfigError {
            path: Vec::new(),
            message: e.to_string(),
        })?;
        if cfg.mode == Mode::SleepDescribe {
            std::thread::sleep(std::time::Duration::from_millis(cfg.n));
        }
        let enc = |s: &Schema| {
            encode_schema(s).map_err(|e| ConfigError {
                path: Vec::new(),
                message: e.to_string(),
            })
        };
        let mut outputs = vec![OutputDecl {
            name: "main".into(),
            schema: enc(&output_schema(&cfg, &schema))?,
        }];
        if cfg.mode == Mode::UnionRejected {
            let union = DataType::Union(
                UnionFields::try_new(
                    vec![0, 1],
                    vec![
                        Field::new("i", DataType::Int32, true),
                        Field::new("s", DataType::Utf8, true),
                    ],
                )
                .map_err(|e| ConfigError {
                    path: Vec::new(),
                    message: e.to_string(),
                })?,
                UnionMode::Sparse,
            );
            outputs.push(OutputDecl {
                name: "rejected".into(),
                schema: enc(&Schema::new(vec![
                    Field::new("either", union, true),
                    Field::new(sluice_sdk::REASON_COLUMN, DataType::Utf8, false),
                ]))?,
            });
        }
        Ok(Description {
            outputs,
            state_format: (cfg.mode == Mode::BadState).then_some(1),
        })
    }

    fn open(config_json: String, input: Vec<u8>) -> Result<(), ConfigError> {
        let cfg = config(&config_json)?;
        let input = decode_schema(&input).map_err(|e| ConfigError {
            path: Vec::new(),
            message: e.to_string(),
        })?;
        let output = output_schema(&cfg, &input);
        STATE.with(|s| {
            *s.borrow_mut() = Some(State {
                cfg,
                input,
                output,
                seen: Vec::new(),
            })
        });
        Ok(())
    }

    fn process(bytes: Vec<u8>) -> Result<Vec<OutputBatch>, ProcessError> {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let s = s.as_mut().ok_or_else(|| failed("not opened"))?;
            let batch = decode_batch(bytes.clone()).map_err(|e| ProcessError::InvalidInput(e.to_string()))?;
            let cfg = s.cfg.clone();
            match cfg.mode {
                Mode::Sleep => std::thread::sleep(std::time::Duration::from_millis(cfg.n)),
                Mode::Spin => {
                    sluice_sdk::log::warn(&format!("spinning on a batch of {} rows", batch.num_rows()));
                    let mut x = 0u64;
                    for i in 0..cfg.n {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                    }
                    if has_marker(&cfg, &batch) {
                        return Err(failed(format!("marker {} seen after spinning ({x})", cfg.marker)));
                    }
                }
                Mode::DictBomb | Mode::ViewBomb => {
                    let column = bomb(cfg.mode, batch.num_rows(), cfg.n as usize);
                    let b = RecordBatch::try_new(s.output.clone(), vec![column]).map_err(failed)?;
                    return Ok(vec![out(&b)?]);
                }
                Mode::Exit if has_marker(&cfg, &batch) => std::process::exit(3),
                Mode::LogFlood => {
                    for i in 0..cfg.n {
                        sluice_sdk::log::warn(&format!("flood line {i}\nFORGED ERROR host line\r\u{1b}[31m"));
                    }
                }
                Mode::Random if has_marker(&cfg, &batch) => {
                    let hash = std::collections::hash_map::RandomState::new().hash_one(42u64);
                    return Err(failed(format!("random draw {hash:016x}")));
                }
                Mode::NullBomb => {
                    let nothing: ArrayRef = Arc::new(NullArray::new(batch.num_rows()));
                    return Ok(vec![out(
                        &RecordBatch::try_new(s.output.clone(), vec![nothing]).map_err(failed)?
                    )?]);
                }
                Mode::FinishAmplify | Mode::BadState => s.seen.push(batch),
                _ => {}
            }
            Ok(vec![OutputBatch {
                output: "main".to_owned(),
                batch: bytes,
            }])
        })
    }

    fn advance_watermark(_watermark: i64) -> Result<Vec<OutputBatch>, ProcessError> {
        Ok(Vec::new())
    }

    fn finish() -> Result<Vec<OutputBatch>, ProcessError> {
        STATE.with(|s| {
            let s = s.borrow();
            let s = s.as_ref().ok_or_else(|| failed("not opened"))?;
            match s.cfg.mode {
                Mode::NullBomb => {
                    let nothing: ArrayRef = Arc::new(NullArray::new(s.cfg.n as usize));
                    Ok(vec![out(
                        &RecordBatch::try_new(s.output.clone(), vec![nothing]).map_err(failed)?
                    )?])
                }
                Mode::FinishAmplify => {
                    let mut outs = Vec::new();
                    for _ in 0..s.cfg.n {
                        for b in &s.seen {
                            outs.push(out(b)?);
                        }
                    }
                    Ok(outs)
                }
                _ => {
                    let _ = &s.input;
                    Ok(Vec::new())
                }
            }
        })
    }

    fn snapshot() -> Result<Option<StateSnapshot>, String> {
        let bad = STATE.with(|s| s.borrow().as_ref().is_some_and(|s| s.cfg.mode == Mode::BadState));
        Ok(bad.then(|| StateSnapshot {
            format_version: 99,
            data: b"state".to_vec(),
        }))
    }

    fn restore(state: StateSnapshot) -> Result<(), RestoreError> {
        if state.format_version == 1 {
            Ok(())
        } else {
            Err(RestoreError::UnsupportedVersion(state.format_version))
        }
    }
}

#[cfg(target_arch = "wasm32")]
export!(Hostile);
