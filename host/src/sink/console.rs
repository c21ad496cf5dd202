//! The console sink (`type = "console"`), for development: rows to stdout as JSON lines or
//! tables as they are written; the same sink discarding what it is given (what `sluice run
//! --dry-run` puts in place of every sink); and [`Terminal`], the storage of a pipeline whose
//! first sink is the console (its dead letters go to stderr as JSON lines).
//!
//! The terminal keeps nothing: a console sink takes part in checkpoints with no files, so
//! after a crash the rows since the last checkpoint are printed again, and a pipeline whose
//! first sink is the console keeps no checkpoints unless `[checkpoint] path` is given.

use std::io::Write;

use arrow::array::RecordBatch;

use super::storage::{StagedFile, Storage};
use super::{Sealing, Sink, SinkError, SinkInput, SinkReport, TwoPhase, WriteAt};
use crate::checkpoint::OutputFile;
use crate::checkpoint::protocol::Probe;
use crate::config::ConsoleFormat as ConsoleStyle;

/// Which stream of the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The terminal as a storage: every file written to it is printed at once, nothing is kept,
/// so there is never anything to publish or recover.
#[derive(Debug, Clone, Copy)]
pub struct Terminal(pub Stream);

struct Printed(Stream);

impl Write for Printed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0 {
            Stream::Stdout => std::io::stdout().lock().write(buf),
            Stream::Stderr => std::io::stderr().lock().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0 {
            Stream::Stdout => std::io::stdout().flush(),
            Stream::Stderr => std::io::stderr().flush(),
        }
    }
}

impl StagedFile for Printed {
    fn sync(&mut self) -> std::io::Result<()> {
        self.flush()
    }
}

fn unsupported(what: &str) -> SinkError {
    SinkError::Io {
        action: "recovering",
        path: "the terminal".into(),
        error: std::io::Error::other(format!("the terminal keeps no files to {what}")),
    }
}

impl Storage for Terminal {
    fn location(&self) -> String {
        match self.0 {
            Stream::Stdout => "stdout".to_owned(),
            Stream::Stderr => "stderr".to_owned(),
        }
    }

    fn create(&self, _rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        Ok(Box::new(Printed(self.0)))
    }

    fn journal(&self, _rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        Err(unsupported("journal"))
    }

    fn publish(&self, _files: &[OutputFile]) -> Result<(), SinkError> {
        Ok(())
    }

    fn probe(&self, _file: &OutputFile) -> Result<Probe, SinkError> {
        Ok(Probe::default())
    }

    fn seal(&self, _file: &OutputFile, _len: u64, _trailer: &[u8]) -> Result<(), SinkError> {
        Ok(())
    }

    fn read_journal(&self, _rel: &str, _len: u64) -> Result<Vec<u8>, SinkError> {
        Err(unsupported("read a journal of"))
    }

    fn forget(&self, _rel: &str) -> Result<(), SinkError> {
        Ok(())
    }

    fn temporaries(&self) -> Result<Vec<String>, SinkError> {
        Ok(Vec::new())
    }

    fn remove_temporary(&self, _temp_rel: &str) -> Result<bool, SinkError> {
        Ok(false)
    }
}

/// Prints rows (or the source's records) to stdout, or only counts them.
#[derive(Debug)]
pub struct ConsoleSink {
    name: String,
    /// How it prints; `None`: it discards.
    style: Option<ConsoleStyle>,
    storage: Terminal,
    rows: u64,
}

impl ConsoleSink {
    /// A console sink called `name`.
    pub fn new(name: String, style: ConsoleStyle) -> Self {
        ConsoleSink {
            name,
            style: Some(style),
            storage: Terminal(Stream::Stdout),
            rows: 0,
        }
    }

    /// A sink called `name` that counts what it is given and keeps nothing.
    pub fn discarding(name: String) -> Self {
        ConsoleSink {
            style: None,
            ..ConsoleSink::new(name, ConsoleStyle::Json)
        }
    }

    fn print(&self, batch: &RecordBatch) -> Result<(), SinkError> {
        let Some(style) = self.style else { return Ok(()) };
        let mut out = std::io::stdout().lock();
        let io = |error: std::io::Error| SinkError::Io {
            action: "printing rows to",
            path: "stdout".into(),
            error,
        };
        match style {
            ConsoleStyle::Json => {
                let mut writer = arrow_json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow_json::writer::LineDelimited>(&mut out);
                writer.write(batch)?;
                writer.finish()?;
            }
            ConsoleStyle::Table => {
                let table = arrow::util::pretty::pretty_format_batches(std::slice::from_ref(batch))?;
                writeln!(out, "{table}").map_err(io)?;
            }
        }
        out.flush().map_err(io)
    }
}

impl TwoPhase for ConsoleSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn sealing(&self) -> Sealing {
        Sealing::CutBack
    }

    fn storage(&self) -> &dyn Storage {
        &self.storage
    }

    fn pre_commit(&mut self) -> Result<Vec<OutputFile>, SinkError> {
        Ok(Vec::new())
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn close_all(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn report(&self) -> SinkReport {
        SinkReport {
            name: self.name.clone(),
            location: self.storage.location(),
            rows: self.rows,
            files: Vec::new(),
        }
    }
}

impl Sink for ConsoleSink {
    fn write(&mut self, input: SinkInput<'_>, _at: WriteAt) -> Result<(), SinkError> {
        match input {
            SinkInput::Rows(batch) => {
                if batch.num_rows() > 0 {
                    self.print(batch)?;
                }
                self.rows += batch.num_rows() as u64;
            }
            SinkInput::Records { count, .. } if self.style.is_none() => self.rows += count as u64,
            SinkInput::Records { data, count } => {
                let mut out = std::io::stdout().lock();
                out.write_all(data)
                    .and_then(|_| out.flush())
                    .map_err(|error| SinkError::Io {
                        action: "printing records to",
                        path: "stdout".into(),
                        error,
                    })?;
                self.rows += count as u64;
            }
        }
        Ok(())
    }
}
