//! Checkpoints: source positions, plugin state and committed output move together, so a
//! crash or a stop at any instant neither loses nor duplicates a record.
//!
//! # How a checkpoint is taken
//! The reader thread marks a chunk as a **barrier** every `[checkpoint] interval`. The
//! worker that processes a barrier chunk snapshots its stateful stages right after it (so the
//! snapshot is the state after exactly the rows up to the barrier). When the ordered writer
//! has written the barrier chunk's output, every row up to the barrier, and none after it, is
//! in the sinks. The writer then
//! 1. makes the sinks durable: each open Parquet file's buffered rows become a row group,
//!    the file is synced, and the new row groups' metadata is appended to the file's journal
//!    (synced); the open dead-letter file is synced. Their lengths are recorded;
//! 2. stores the checkpoint (epoch, source position after the barrier, snapshots, the
//!    recorded lengths, and the files that became complete since the last checkpoint) in a
//!    [`store::CheckpointStore`], atomically and durably;
//! 3. only then renames the complete files into place.
//!
//! So offsets are recorded only after the output holding their rows is durable, and output
//! becomes visible only after the checkpoint that accounts for it.
//!
//! # File size is independent of the checkpoint interval
//! Files are not closed at checkpoints: an open file keeps growing across checkpoints until
//! it reaches `target_file_mb` or `max_file_age`, so checkpointing every second still gives
//! 128 MiB files. The cost is that a row group is cut at each checkpoint (row groups hold at
//! most one interval's rows per partition). A checkpoint records how many bytes of the file,
//! and of its row-group journal, are durable.
//!
//! # Recovery (`sink::recover`)
//! On start the latest checkpoint is read and each file it lists is settled
//! ([`protocol::recover_outputs`]): a complete file still under its temporary name is renamed
//! into place; an open file is cut back to its recorded length and given a footer built from
//! its journal, which makes it a valid Parquet file holding exactly the checkpoint's rows,
//! and renamed into place. Every other temporary file is a leftover of the interrupted epoch
//! and is deleted. Reading resumes at the checkpoint's position with the stages' state
//! restored; output names come from input positions (chunk sequence numbers continue across
//! runs), so the replay writes its files under fresh names and nothing is counted twice.
//!
//! Dead letters and the raw archive follow the same path (JSON lines and gzip members need
//! no journal: cutting back is enough). Every sink of a pipeline is made durable before the
//! checkpoint is stored and published after it, so no sink runs ahead of the others.

pub mod model;
pub mod protocol;
pub mod store;

pub use model::{
    Checkpoint, FORMAT_VERSION, FileState, OutputFile, Part, SourcePosition, StageState, Totals, Upload, WatermarkState,
};
pub use protocol::{Refusal, journal_path, temp_path};

#[cfg(test)]
mod tests;
