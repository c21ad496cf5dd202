//! Glue between the generated WIT bindings and [`Transform`]; used by [`export_transform!`]
//! only. Not a stable API.

use std::any::Any;
use std::cell::RefCell;

use crate::transform::{ProcessError, RestoreError, Transform};
use crate::{ConfigError, Emitter, Outputs, config, ipc};

#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "projecting-transformer",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_transformer",
        default_bindings_module: "sluice_sdk::__private::bindings",
    });
}

use bindings::exports::sluice::transform::keyed_state as keyed;
pub use bindings::exports::sluice::transform::keyed_state::Guest as KeyedGuest;
use bindings::exports::sluice::transform::projection;
pub use bindings::exports::sluice::transform::projection::Guest as ProjectionGuest;
use bindings::exports::sluice::transform::transform as wit;
pub use bindings::exports::sluice::transform::transform::Guest;

/// The one running transform of this component instance and its declared outputs.
struct Slot {
    transform: Box<dyn Any>,
    outputs: Outputs,
}

thread_local! {
    static SLOT: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

fn to_wit_config_error(err: ConfigError) -> wit::ConfigError {
    wit::ConfigError {
        path: err.path,
        message: err.message,
    }
}

fn describe_inner<T: Transform>(
    config: &str,
    input: &[u8],
) -> Result<(T::Config, arrow::datatypes::SchemaRef, Outputs), ConfigError> {
    let cfg: T::Config = config::parse(config)?;
    let input = ipc::decode_schema(input).map_err(|e| ConfigError::whole(format!("unreadable input schema: {e}")))?;
    let outputs = T::describe(&cfg, &input)?;
    Ok((cfg, input, outputs))
}

pub fn describe<T: Transform>(config: String, input: Vec<u8>) -> Result<wit::Description, wit::ConfigError> {
    let (_, _, outputs) = describe_inner::<T>(&config, &input).map_err(to_wit_config_error)?;
    let mut decls = Vec::with_capacity(outputs.decls.len());
    for (name, declared) in &outputs.decls {
        let schema = outputs.wire_schema(name).unwrap_or_else(|| declared.clone());
        let schema = ipc::encode_schema(&schema).map_err(|e| {
            to_wit_config_error(ConfigError::whole(format!("cannot encode output schema `{name}`: {e}")))
        })?;
        decls.push(bindings::sluice::transform::types::OutputDecl {
            name: name.clone(),
            schema,
        });
    }
    Ok(wit::Description {
        outputs: decls,
        state_format: T::STATE_FORMAT,
    })
}

pub fn open<T: Transform>(config: String, input: Vec<u8>) -> Result<(), wit::ConfigError> {
    let (cfg, input, outputs) = describe_inner::<T>(&config, &input).map_err(to_wit_config_error)?;
    let transform = T::open(cfg, input).map_err(to_wit_config_error)?;
    SLOT.with(|slot| {
        *slot.borrow_mut() = Some(Slot {
            transform: Box::new(transform),
            outputs,
        });
    });
    Ok(())
}

fn with_transform<T: Transform, R>(
    f: impl FnOnce(&mut T, &Outputs) -> Result<R, ProcessError>,
) -> Result<R, ProcessError> {
    SLOT.with(|slot| {
        let mut slot = slot.borrow_mut();
        let Some(slot) = slot.as_mut() else {
            return Err(ProcessError::Failed("transform called before `open`".into()));
        };
        let Some(transform) = slot.transform.downcast_mut::<T>() else {
            return Err(ProcessError::Failed(
                "instance slot holds another transform type".into(),
            ));
        };
        f(transform, &slot.outputs)
    })
}

fn run_emitting<T: Transform>(
    f: impl FnOnce(&mut T, &mut Emitter) -> Result<(), ProcessError>,
) -> Result<Vec<wit::OutputBatch>, wit::ProcessError> {
    let emitted = with_transform::<T, _>(|t, outputs| {
        let mut out = Emitter::new(outputs.clone());
        f(t, &mut out)?;
        Ok(out.emitted)
    })
    .map_err(to_wit_process_error)?;
    emitted
        .into_iter()
        .map(|(output, batch)| {
            let batch = ipc::encode_batch(&batch).map_err(|e| wit::ProcessError::Failed(e.to_string()))?;
            Ok(wit::OutputBatch { output, batch })
        })
        .collect()
}

fn to_wit_process_error(err: ProcessError) -> wit::ProcessError {
    match err {
        ProcessError::InvalidInput(m) => wit::ProcessError::InvalidInput(m),
        ProcessError::Failed(m) => wit::ProcessError::Failed(m),
    }
}

pub fn process<T: Transform>(batch: Vec<u8>) -> Result<Vec<wit::OutputBatch>, wit::ProcessError> {
    let batch = ipc::decode_batch_from_host(batch).map_err(|e| wit::ProcessError::InvalidInput(e.to_string()))?;
    run_emitting::<T>(|t, out| t.process(batch, out))
}

pub fn advance_watermark<T: Transform>(watermark: i64) -> Result<Vec<wit::OutputBatch>, wit::ProcessError> {
    run_emitting::<T>(|t, out| t.advance_watermark(watermark, out))
}

pub fn finish<T: Transform>() -> Result<Vec<wit::OutputBatch>, wit::ProcessError> {
    run_emitting::<T>(|t, out| t.finish(out))
}

pub fn snapshot<T: Transform>() -> Result<Option<wit::StateSnapshot>, String> {
    let Some(version) = T::STATE_FORMAT else {
        return Ok(None);
    };
    let data = with_transform::<T, _>(|t, _| t.snapshot().map_err(ProcessError::Failed)).map_err(|e| e.to_string())?;
    Ok(Some(wit::StateSnapshot {
        format_version: version,
        data,
    }))
}

/// Run a state-loading call (`restore`, `absorb`) on the open transform.
fn load_state<T: Transform>(
    state: wit::StateSnapshot,
    f: impl FnOnce(&mut T, u32, &[u8]) -> Result<(), RestoreError>,
) -> Result<(), wit::RestoreError> {
    let mut result = Ok(());
    with_transform::<T, _>(|t, _| {
        result = f(t, state.format_version, &state.data);
        Ok(())
    })
    .map_err(|e| wit::RestoreError::Corrupt(e.to_string()))?;
    result.map_err(|e| match e {
        RestoreError::UnsupportedVersion(v) => wit::RestoreError::UnsupportedVersion(v),
        RestoreError::Corrupt(m) => wit::RestoreError::Corrupt(m),
    })
}

pub fn restore<T: Transform>(state: wit::StateSnapshot) -> Result<(), wit::RestoreError> {
    load_state::<T>(state, |t, version, data| t.restore(version, data))
}

pub fn state_key<T: Transform>(config: String, input: Vec<u8>) -> Result<Vec<String>, keyed::ConfigError> {
    let (cfg, input, _) = describe_inner::<T>(&config, &input).map_err(to_wit_config_error)?;
    T::state_key(&cfg, &input).map_err(to_wit_config_error)
}

pub fn reads<T: Transform>(config: String, input: Vec<u8>) -> Result<Option<Vec<String>>, projection::ConfigError> {
    let (cfg, input, _) = describe_inner::<T>(&config, &input).map_err(to_wit_config_error)?;
    T::reads(&cfg, &input).map_err(to_wit_config_error)
}

pub fn keys<T: Transform>() -> Vec<String> {
    with_transform::<T, _>(|t, _| Ok(t.state_keys())).unwrap_or_default()
}

pub fn retain<T: Transform>(keep: Vec<String>) -> Result<(), String> {
    let keep: std::collections::HashSet<String> = keep.into_iter().collect();
    with_transform::<T, _>(|t, _| t.retain_keys(&keep).map_err(ProcessError::Failed)).map_err(|e| e.to_string())
}

pub fn absorb<T: Transform>(state: keyed::StateSnapshot) -> Result<(), keyed::RestoreError> {
    load_state::<T>(state, |t, version, data| t.absorb(version, data))
}

/// Export a [`Transform`] implementation as this component's `sluice:transform` world
/// (`projecting-transformer`: `transform`; `keyed-state`, which says "not keyed" unless the
/// transform implements [`Transform::state_key`]; and `projection`, which says "reads every
/// column" unless it implements [`Transform::reads`]).
///
/// Use once per crate, at the crate root: `sluice_sdk::export_transform!(MyTransform);`.
/// The exports exist only when building for WebAssembly; a native build of the same crate
/// (for unit tests) type-checks the implementation without exporting anything.
#[macro_export]
macro_rules! export_transform {
    ($ty:ty) => {
        const _: fn() = || {
            fn assert_transform<T: $crate::Transform>() {}
            assert_transform::<$ty>();
        };
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __SluiceExport;

            impl $crate::__private::Guest for __SluiceExport {
                fn describe(config: String, input: Vec<u8>) -> ::core::result::Result<$crate::__private::bindings::exports::sluice::transform::transform::Description, $crate::__private::bindings::exports::sluice::transform::transform::ConfigError> {
                    $crate::__private::describe::<$ty>(config, input)
                }
                fn open(config: String, input: Vec<u8>) -> ::core::result::Result<(), $crate::__private::bindings::exports::sluice::transform::transform::ConfigError> {
                    $crate::__private::open::<$ty>(config, input)
                }
                fn process(batch: Vec<u8>) -> ::core::result::Result<Vec<$crate::__private::bindings::exports::sluice::transform::transform::OutputBatch>, $crate::__private::bindings::exports::sluice::transform::transform::ProcessError> {
                    $crate::__private::process::<$ty>(batch)
                }
                fn advance_watermark(watermark: i64) -> ::core::result::Result<Vec<$crate::__private::bindings::exports::sluice::transform::transform::OutputBatch>, $crate::__private::bindings::exports::sluice::transform::transform::ProcessError> {
                    $crate::__private::advance_watermark::<$ty>(watermark)
                }
                fn finish() -> ::core::result::Result<Vec<$crate::__private::bindings::exports::sluice::transform::transform::OutputBatch>, $crate::__private::bindings::exports::sluice::transform::transform::ProcessError> {
                    $crate::__private::finish::<$ty>()
                }
                fn snapshot() -> ::core::result::Result<Option<$crate::__private::bindings::exports::sluice::transform::transform::StateSnapshot>, String> {
                    $crate::__private::snapshot::<$ty>()
                }
                fn restore(state: $crate::__private::bindings::exports::sluice::transform::transform::StateSnapshot) -> ::core::result::Result<(), $crate::__private::bindings::exports::sluice::transform::transform::RestoreError> {
                    $crate::__private::restore::<$ty>(state)
                }
            }

            impl $crate::__private::KeyedGuest for __SluiceExport {
                fn state_key(config: String, input: Vec<u8>) -> ::core::result::Result<Vec<String>, $crate::__private::bindings::exports::sluice::transform::keyed_state::ConfigError> {
                    $crate::__private::state_key::<$ty>(config, input)
                }
                fn keys() -> Vec<String> {
                    $crate::__private::keys::<$ty>()
                }
                fn retain(keep: Vec<String>) -> ::core::result::Result<(), String> {
                    $crate::__private::retain::<$ty>(keep)
                }
                fn absorb(state: $crate::__private::bindings::exports::sluice::transform::keyed_state::StateSnapshot) -> ::core::result::Result<(), $crate::__private::bindings::exports::sluice::transform::keyed_state::RestoreError> {
                    $crate::__private::absorb::<$ty>(state)
                }
            }

            impl $crate::__private::ProjectionGuest for __SluiceExport {
                fn reads(config: String, input: Vec<u8>) -> ::core::result::Result<Option<Vec<String>>, $crate::__private::bindings::exports::sluice::transform::projection::ConfigError> {
                    $crate::__private::reads::<$ty>(config, input)
                }
            }

            $crate::__private::bindings::__export_transformer!(__SluiceExport with_types_in $crate::__private::bindings);
        };
    };
}
