//! Following files as they grow (`follow = true`), as `tail -F`, Vector's file source and
//! Fluent Bit's `tail` do: appended lines are read as they arrive, new files at the path are
//! picked up, and log rotation loses and repeats nothing.
//!
//! # Which file is which
//! A followed file is known by its content, not its path: by its **head** (a digest of its
//! first line, up to [`HEAD_BYTES`]) and, for the part read, its **tail** (a digest of the
//! bytes just before the read offset, up to [`TAIL_BYTES`]). While it is open it is also
//! known by its device and inode. So:
//! - **rename rotation** (`app.log` → `app.log.1`, a new `app.log`): the open file keeps
//!   being read to its end through its handle, under whatever name; when the renamed file no
//!   longer matches the path it is read until it has not grown for `rotate_wait`, then
//!   closed. The new `app.log` has a new head: it is a new file, read from its start.
//! - **copytruncate** (`app.log` copied to `app.log.1`, then truncated): the truncation is
//!   seen (the file is shorter than what was read, or its first line changed), and the
//!   copy, which starts like it and holds the same bytes before the offset, takes its place:
//!   reading goes on in the copy from the same offset, so lines written between the last
//!   read and the copy are not lost. (Lines written between the copy and the truncation are
//!   lost by copytruncate itself, for every reader.) A copy made of a file still being
//!   followed is not read again.
//! - **a restart**: the checkpoint holds each file's head, tail, offset and the path it was
//!   last seen at; on resuming, each is found again by its content wherever it now is.
//!
//! A file is identified once it has a first line (or [`HEAD_BYTES`] of one): an empty file,
//! or one still writing its first line, waits. Only whole lines are read; a last line
//! without a line break waits for it, unless its file is closed after a rotation.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{READ_BLOCK, absolute, line_ends};
use crate::checkpoint::SourcePosition;
use crate::config::FollowConfig;
use crate::record::{Chunk, PartitionEvent, SourceSpan};
use crate::source::position::PartitionPosition;
use crate::source::{Source, SourceError};

/// Bytes of a file's first line its head digest covers.
pub const HEAD_BYTES: usize = 1024;
/// Bytes before the read offset its tail digest covers.
pub const TAIL_BYTES: usize = 256;
/// How long a quiet run waits before handing over an empty chunk: its checkpoint seals
/// files past `max_file_age`, so rows become visible while nothing arrives.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// A file being followed.
struct Followed {
    /// Its key in checkpoints: stable across renames and restarts.
    key: Arc<str>,
    /// Its partition name (the path it was found at; unique among the followed).
    name: Arc<str>,
    /// Where it was last seen.
    path: PathBuf,
    /// `None` once its content left its inode (truncated): it waits for a copy to go on in.
    file: Option<File>,
    /// Device and inode of `file`.
    inode: Option<(u64, u64)>,
    /// The inode that was truncated under it: never taken for its copy.
    truncated: Option<(u64, u64)>,
    head: String,
    /// The bytes just before `offset` (up to [`TAIL_BYTES`]).
    recent: Vec<u8>,
    offset: u64,
    line: u64,
    /// Bytes read past the last whole line.
    carry: Vec<u8>,
    /// Its size at the last look.
    size: u64,
    /// Its path matched at the last scan.
    matched: bool,
    /// When it last grew (or was found, or lost its content).
    changed: Instant,
    /// Closed at the next turn: read what is left, then end the partition.
    closing: bool,
}

impl Followed {
    /// Its content left its inode (truncated, or rewritten in place): it waits for a copy to
    /// go on in, and the inode is never taken for that copy.
    fn lose_content(&mut self, now: Instant) {
        self.file = None;
        self.truncated = self.inode.take();
        self.carry.clear();
        self.changed = now;
    }
}

/// A file a checkpoint knew, not found again yet.
#[derive(Debug)]
struct Saved {
    key: String,
    path: String,
    /// `None` for a position written without following (matched by path).
    head: Option<String>,
    tail: Option<String>,
    offset: u64,
    line: u64,
}

/// A file found at the path, not yet known by its inode.
struct Candidate {
    path: PathBuf,
    file: File,
    inode: (u64, u64),
    size: u64,
    head: String,
}

/// What a file found at the path is.
enum Found {
    /// A followed file's content, which it goes on in (a copy after a copytruncate).
    Followed(usize),
    /// A checkpointed file, found again.
    Saved(usize),
    /// A copy of content already read: not read.
    Copy,
    /// A file of its own.
    New,
}

/// Follows the files at a path (a file, a folder's visible files, or a glob).
pub struct FollowSource {
    pattern: PathBuf,
    batch_rows: usize,
    settings: FollowConfig,
    stop: Arc<AtomicBool>,
    next_seq: u64,
    files: Vec<Followed>,
    saved: Vec<Saved>,
    turn: usize,
    last_scan: Option<Instant>,
    last_chunk: Instant,
    events: Vec<PartitionEvent>,
    retired: Vec<Arc<str>>,
    /// Copies already reported, by inode.
    copies: HashSet<(u64, u64)>,
}

impl std::fmt::Debug for FollowSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowSource")
            .field("pattern", &self.pattern)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl FollowSource {
    /// Follow the files at `pattern`, `batch_rows` lines per chunk at most, until `stop`.
    pub fn new(pattern: PathBuf, batch_rows: usize, settings: FollowConfig, stop: Arc<AtomicBool>) -> Self {
        FollowSource {
            pattern,
            batch_rows,
            settings,
            stop,
            next_seq: 0,
            files: Vec::new(),
            saved: Vec::new(),
            turn: 0,
            last_scan: None,
            last_chunk: Instant::now(),
            events: Vec::new(),
            retired: Vec::new(),
            copies: HashSet::new(),
        }
    }

    /// The files at the path now (none is not an error: they may come).
    fn list(&self) -> Vec<PathBuf> {
        match super::expand(Some(&self.pattern)) {
            Ok(super::Inputs::Files(files)) => files,
            Ok(super::Inputs::Stdin) | Err(SourceError::NoFiles(_)) => Vec::new(),
            Err(e) => {
                tracing::warn!(path = %self.pattern.display(), error = %e, "Cannot list the followed path; trying again");
                Vec::new()
            }
        }
    }

    /// Look at the path and the open files again: truncations, renames, new files, files
    /// to close.
    fn scan(&mut self) -> Result<(), SourceError> {
        let now = Instant::now();
        let first = self.last_scan.is_none();
        self.last_scan = Some(now);
        for f in &mut self.files {
            let Some(file) = &f.file else { continue };
            let size = file.metadata().map_err(|error| io(&f.path, error))?.len();
            // Shorter than what was read, or different where it was read (its first line, or
            // the bytes just before the offset: rewritten past the offset between two looks).
            let rewritten = size < f.offset
                || (f.offset > 0
                    && (first_line(file)
                        .map_err(|error| io(&f.path, error))?
                        .map(|l| digest(&l))
                        != Some(f.head.clone())
                        || tail_digest(file, f.offset).map_err(|error| io(&f.path, error))? != digest(&f.recent)));
            if rewritten {
                tracing::info!(file = %f.path.display(), read = f.offset, size, "A followed file was truncated or rewritten; looking for a copy of what it held (copytruncate)");
                f.lose_content(now);
            } else if size != f.size {
                f.size = size;
                f.changed = now;
            }
        }
        let mut seen = HashSet::new();
        for path in self.list() {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let inode = (meta.dev(), meta.ino());
            if let Some(i) = self.files.iter().position(|f| f.inode == Some(inode)) {
                if self.files[i].path != path {
                    tracing::info!(from = %self.files[i].path.display(), to = %path.display(), "A followed file was renamed");
                    self.files[i].path = path;
                }
                seen.insert(i);
                continue;
            }
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "Cannot open a file to follow; trying again");
                    continue;
                }
            };
            let Some(first) = first_line(&file).map_err(|error| io(&path, error))? else {
                continue; // no first line yet
            };
            if let Some(format) = compressed(&first) {
                if self.copies.insert(inode) {
                    tracing::warn!(file = %path.display(), format, "Not following a compressed file (a rotated log compressed by logrotate?); narrow the path to leave it out");
                }
                continue;
            }
            let c = Candidate {
                head: digest(&first),
                path,
                file,
                inode,
                size: meta.len(),
            };
            match self.identify(&c)? {
                Found::Followed(i) => {
                    let f = &mut self.files[i];
                    tracing::info!(file = %c.path.display(), at = f.offset, "Going on in the copy of a truncated file");
                    f.file = Some(c.file);
                    f.inode = Some(c.inode);
                    f.truncated = None;
                    f.path = c.path;
                    f.size = c.size;
                    f.changed = now;
                    seen.insert(i);
                }
                Found::Saved(j) => {
                    let s = self.saved.swap_remove(j);
                    let recent = read_recent(&c.file, s.offset).map_err(|error| io(&c.path, error))?;
                    self.start(s.key, c, (s.offset, s.line, recent));
                    seen.insert(self.files.len() - 1);
                }
                Found::Copy => {
                    if self.copies.insert(c.inode) {
                        tracing::info!(file = %c.path.display(), "Not reading a copy of a file already read");
                    }
                }
                Found::New => {
                    let key = self.unique_key(&c.head);
                    self.start(key, c, (0, 0, Vec::new()));
                    seen.insert(self.files.len() - 1);
                }
            }
        }
        if first {
            // What the checkpoint knew and is gone now leaves it.
            for s in self.saved.drain(..) {
                tracing::warn!(file = %s.path, read = s.offset, "A file the checkpoint was following is gone");
                self.retired.push(Arc::from(s.key.as_str()));
            }
        }
        let wait = self.settings.rotate_wait;
        for (i, f) in self.files.iter_mut().enumerate() {
            f.matched = seen.contains(&i);
            let quiet = now.duration_since(f.changed) >= wait;
            let drained = f.size <= f.offset + f.carry.len() as u64;
            f.closing = quiet && (f.file.is_none() || (!f.matched && drained));
        }
        Ok(())
    }

    /// Which file the one found at `path` is (see the module's notes).
    fn identify(&self, c: &Candidate) -> Result<Found, SourceError> {
        let (path, file, inode, size, head) = (&c.path, &c.file, c.inode, c.size, c.head.as_str());
        let err = |error| io(path, error);
        for (j, s) in self.saved.iter().enumerate() {
            let same = match (&s.head, &s.tail) {
                (Some(h), Some(t)) => h == head && size >= s.offset && tail_digest(file, s.offset).map_err(err)? == *t,
                _ => s.path == absolute(path) && size >= s.offset,
            };
            if same {
                return Ok(Found::Saved(j));
            }
        }
        for (i, f) in self.files.iter().enumerate() {
            if f.head != head {
                continue;
            }
            match &f.file {
                None if f.truncated != Some(inode) => {
                    if size < f.offset || tail_digest(file, f.offset).map_err(err)? == digest(&f.recent) {
                        return Ok(Found::Followed(i));
                    }
                }
                None => {}
                Some(live) => {
                    // A copy holds the same bytes as the file it was made of, up to its end.
                    let len = live.metadata().map_err(|error| io(&f.path, error))?.len();
                    let upto = size.min(len);
                    let theirs = tail_digest(live, upto).map_err(|error| io(&f.path, error))?;
                    if tail_digest(file, upto).map_err(err)? == theirs {
                        return Ok(Found::Copy);
                    }
                    // Unless that file was truncated (and written again) after this scan looked
                    // at it: a copytruncate between the look and the listing. This is then its
                    // copy, holding what was read, as in the case above; read as a new file, it
                    // would be read twice. The next scan sees the truncation and goes on in it.
                    let read = digest(&f.recent);
                    let kept =
                        len >= f.offset && tail_digest(live, f.offset).map_err(|error| io(&f.path, error))? == read;
                    if !kept && (size < f.offset || tail_digest(file, f.offset).map_err(err)? == read) {
                        return Ok(Found::Copy);
                    }
                }
            }
        }
        Ok(Found::New)
    }

    /// A key no followed or saved file has: the head, numbered when taken.
    fn unique_key(&self, head: &str) -> Arc<str> {
        let taken = |k: &str| self.files.iter().any(|f| &*f.key == k) || self.saved.iter().any(|s| s.key == k);
        let mut key = head.to_owned();
        let mut n = 1;
        while taken(&key) {
            n += 1;
            key = format!("{head}-{n}");
        }
        Arc::from(key.as_str())
    }

    /// Start following `c` as `key` from (offset, line, the bytes before the offset).
    fn start(&mut self, key: impl Into<Arc<str>>, c: Candidate, (offset, line, recent): (u64, u64, Vec<u8>)) {
        let Candidate {
            path,
            file,
            inode,
            size,
            head,
        } = c;
        let mut name = path.to_string_lossy().into_owned();
        let base = name.clone();
        let mut n = 1;
        while self.files.iter().any(|f| *f.name == name) {
            n += 1;
            name = format!("{base} #{n}");
        }
        tracing::info!(file = %path.display(), from = offset, "Following a file");
        let name: Arc<str> = Arc::from(name.as_str());
        self.events.push(PartitionEvent::Opened(name.clone()));
        self.files.push(Followed {
            key: key.into(),
            name,
            path,
            file: Some(file),
            inode: Some(inode),
            truncated: None,
            head,
            recent,
            offset,
            line,
            carry: Vec::new(),
            size,
            matched: true,
            changed: Instant::now(),
            closing: false,
        });
    }

    /// Up to `batch_rows` whole lines of followed file `i`, or `None` when it has none yet.
    /// `last`: the file is being closed, so a last line without a line break counts.
    fn read(&mut self, i: usize, last: bool) -> Result<Option<Chunk>, SourceError> {
        let batch_rows = self.batch_rows;
        let f = &mut self.files[i];
        let Some(file) = &f.file else { return Ok(None) };
        let mut data = std::mem::take(&mut f.carry);
        let mut ends = Vec::new();
        let mut scanned = 0;
        let mut checked = false;
        let cut = loop {
            if let Some(at) = line_ends(&data, scanned, &mut ends, batch_rows) {
                break Some(at);
            }
            scanned = data.len();
            let len = data.len();
            data.resize(len + READ_BLOCK, 0);
            let n = loop {
                match file.read_at(&mut data[len..], f.offset + len as u64) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(io(&f.path, error)),
                }
            };
            data.truncate(len + n);
            if n == 0 {
                break None;
            }
            f.changed = Instant::now();
            // New bytes: first make sure they follow what was read, and that the file was not
            // rewritten (with the same first line, and longer) since the last look. With
            // nothing read yet, that it still starts with the line it was found by: it may
            // have been truncated and written again since (a copytruncate, whose copy holds
            // its lines), which a look does not tell at offset 0.
            if !checked {
                checked = true;
                let err = |error| io(&f.path, error);
                let same = if f.offset > 0 {
                    tail_digest(file, f.offset).map_err(err)? == digest(&f.recent)
                } else {
                    first_line(file).map_err(err)?.map(|l| digest(&l)) == Some(f.head.clone())
                };
                if !same {
                    tracing::info!(file = %f.path.display(), read = f.offset, "A followed file was rewritten; reading it again as a new file");
                    f.lose_content(Instant::now());
                    return Ok(None);
                }
            }
        };
        let mut consumed = cut.unwrap_or_else(|| ends.last().copied().unwrap_or(0));
        f.carry = data.split_off(consumed);
        if last && cut.is_none() && !f.carry.is_empty() {
            data.append(&mut f.carry);
            consumed = data.len();
            data.push(b'\n');
            ends.push(data.len());
        }
        if ends.is_empty() {
            return Ok(None);
        }
        let start_offset = f.offset;
        let first_line = f.line + 1;
        f.offset += consumed as u64;
        f.line += ends.len() as u64;
        f.size = f.size.max(f.offset + f.carry.len() as u64);
        f.recent
            .extend_from_slice(&data[consumed.saturating_sub(TAIL_BYTES)..consumed]);
        let excess = f.recent.len().saturating_sub(TAIL_BYTES);
        f.recent.drain(..excess);
        let position = PartitionPosition::Followed {
            path: f.path.to_string_lossy().into_owned(),
            head: f.head.clone(),
            tail: digest(&f.recent),
            offset: f.offset,
            line: f.line,
        };
        Ok(Some(Chunk {
            data,
            ends,
            span: SourceSpan {
                file: f.name.clone(),
                first_line,
                last_line: f.line,
                start_offset,
                end_offset: f.offset,
            },
            position: Some((f.key.clone(), position.to_value())),
            ..Chunk::default()
        }))
    }

    /// The next chunk with lines, or with partition news, or empty after a quiet
    /// [`IDLE_TICK`]; `None` once asked to stop.
    fn next(&mut self) -> Result<Option<Chunk>, SourceError> {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let due = self
                .last_scan
                .is_none_or(|at| at.elapsed() >= self.settings.poll_interval);
            if due {
                self.scan()?;
            }
            let count = self.files.len();
            for k in 0..count {
                let i = (self.turn + k) % count;
                if self.files[i].closing {
                    if let Some(chunk) = self.read(i, false)? {
                        self.turn = i;
                        return Ok(Some(chunk));
                    }
                    // What is left is a last line without a line break, if anything.
                    let chunk = self.read(i, true)?;
                    let f = self.files.remove(i);
                    tracing::info!(file = %f.path.display(), lines = f.line, "Stopped following a file");
                    self.events.push(PartitionEvent::Ended(f.name));
                    self.retired.push(f.key);
                    self.turn = i;
                    return Ok(Some(chunk.unwrap_or_default()));
                }
                if let Some(chunk) = self.read(i, false)? {
                    self.turn = i + 1;
                    return Ok(Some(chunk));
                }
            }
            if !self.events.is_empty() || !self.retired.is_empty() || self.last_chunk.elapsed() >= IDLE_TICK {
                return Ok(Some(Chunk::default()));
            }
            // Nothing to read: wait for the next look, a little at a time to see a stop.
            let next_scan = self.last_scan.map_or(Duration::ZERO, |at| {
                self.settings.poll_interval.saturating_sub(at.elapsed())
            });
            std::thread::sleep(next_scan.min(Duration::from_millis(50)));
        }
    }
}

impl Source for FollowSource {
    /// Continue from a checkpoint: each file it followed is looked for by its content at
    /// the first scan (a position written without following is looked for by its path).
    fn resume(&mut self, position: &SourcePosition) -> Result<(), SourceError> {
        self.next_seq = position.next_seq;
        for (key, value) in &position.partitions {
            let saved = match PartitionPosition::from_value(key, "file", value)? {
                PartitionPosition::Followed {
                    path,
                    head,
                    tail,
                    offset,
                    line,
                } => Saved {
                    key: key.clone(),
                    path,
                    head: Some(head),
                    tail: Some(tail),
                    offset,
                    line,
                },
                PartitionPosition::File { offset, line } => Saved {
                    key: key.clone(),
                    path: key.clone(),
                    head: None,
                    tail: None,
                    offset,
                    line,
                },
                other => {
                    return Err(SourceError::Position {
                        partition: key.clone(),
                        kind: "file",
                        message: format!("found {other:?}"),
                    });
                }
            };
            self.saved.push(saved);
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        let Some(mut chunk) = self.next()? else {
            return Ok(None);
        };
        chunk.seq = self.next_seq;
        chunk.ingest_micros = chrono::Utc::now().timestamp_micros();
        chunk.events = std::mem::take(&mut self.events);
        chunk.retired = std::mem::take(&mut self.retired);
        self.next_seq += 1;
        self.last_chunk = Instant::now();
        Ok(Some(chunk))
    }

    fn bounded(&self) -> bool {
        false
    }

    /// Bytes written to the followed files and not read yet, as of the last look.
    fn backlog(&self) -> Option<u64> {
        Some(
            self.files
                .iter()
                .filter(|f| f.file.is_some())
                .map(|f| f.size.saturating_sub(f.offset))
                .sum(),
        )
    }
}

fn io(path: &Path, error: std::io::Error) -> SourceError {
    SourceError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Hex of the first 8 bytes of SHA-256 over `bytes`.
fn digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The file's first line with its line break, or its first [`HEAD_BYTES`] when the line is
/// longer; `None` while it has neither.
fn first_line(file: &File) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; HEAD_BYTES];
    let mut len = 0;
    while len < HEAD_BYTES {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    if let Some(at) = memchr::memchr(b'\n', &buf) {
        buf.truncate(at + 1);
        return Ok(Some(buf));
    }
    Ok((len == HEAD_BYTES).then_some(buf))
}

/// The compression format a file's first bytes announce, if any: such a file is a rotated,
/// compressed log, never lines to read.
fn compressed(first: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 4] = [
        (&[0x1f, 0x8b], "gzip"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (b"BZh", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| first.starts_with(magic))
        .map(|(_, name)| *name)
}
/// The bytes just before `offset` (up to [`TAIL_BYTES`]).
fn read_recent(file: &File, offset: u64) -> std::io::Result<Vec<u8>> {
    let from = offset.saturating_sub(TAIL_BYTES as u64);
    let mut buf = vec![0u8; (offset - from) as usize];
    file.read_exact_at(&mut buf, from)?;
    Ok(buf)
}

/// The digest of the bytes just before `offset` (of as many as the file has).
fn tail_digest(file: &File, offset: u64) -> std::io::Result<String> {
    match read_recent(file, offset) {
        Ok(bytes) => Ok(digest(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(String::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
