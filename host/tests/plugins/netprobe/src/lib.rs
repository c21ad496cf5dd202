//! A test-only transform that opens a TCP connection for every batch. Its component imports
//! `wasi:sockets`, which no pipeline grants: the host must refuse it before it runs.

use sluice_sdk::arrow::array::RecordBatch;
use sluice_sdk::arrow::datatypes::SchemaRef;
use sluice_sdk::{ConfigError, Emitter, Outputs, ProcessError, Transform};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

pub struct NetProbe;

impl Transform for NetProbe {
    type Config = Config;

    fn describe(_: &Config, input: &SchemaRef) -> Result<Outputs, ConfigError> {
        Ok(Outputs::new(input.clone()))
    }

    fn open(_: Config, _: SchemaRef) -> Result<Self, ConfigError> {
        Ok(NetProbe)
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError> {
        if std::net::TcpStream::connect("127.0.0.1:9").is_ok() {
            return Err(ProcessError::Failed("connected".into()));
        }
        out.emit(batch)
    }
}

sluice_sdk::export_transform!(NetProbe);
