//! A deliberately faulty transform for the host's tests: passes batches through unchanged,
//! except that a batch holding `marker` in column `column` makes it trap (`mode = "trap"`)
//! or return an error (`mode = "error"`).

use sluice_sdk::arrow::array::{AsArray, RecordBatch};
use sluice_sdk::arrow::datatypes::{DataType, SchemaRef};
use sluice_sdk::{ConfigError, Emitter, Outputs, ProcessError, Transform};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    mode: Mode,
    column: String,
    marker: String,
}

#[derive(serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Trap,
    Error,
}

pub struct Faulty {
    cfg: Config,
    column: usize,
}

impl Transform for Faulty {
    type Config = Config;

    fn describe(cfg: &Config, input: &SchemaRef) -> Result<Outputs, ConfigError> {
        match input.field_with_name(&cfg.column) {
            Ok(f) if f.data_type() == &DataType::Utf8 => Ok(Outputs::new(input.clone())),
            Ok(_) => Err(ConfigError::at(["column"], "expected a string column")),
            Err(_) => Err(ConfigError::at(["column"], format!("no column \"{}\"", cfg.column))),
        }
    }

    fn open(cfg: Config, input: SchemaRef) -> Result<Self, ConfigError> {
        let column = input
            .index_of(&cfg.column)
            .map_err(|e| ConfigError::at(["column"], e.to_string()))?;
        Ok(Faulty { cfg, column })
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError> {
        let hit = batch
            .column(self.column)
            .as_string::<i32>()
            .iter()
            .any(|v| v == Some(self.cfg.marker.as_str()));
        if hit {
            match self.cfg.mode {
                Mode::Trap => panic!("marker {} seen", self.cfg.marker),
                Mode::Error => {
                    return Err(ProcessError::Failed(format!("marker {} seen", self.cfg.marker)));
                }
            }
        }
        out.emit(batch)
    }
}

sluice_sdk::export_transform!(Faulty);
