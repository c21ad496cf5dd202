//! Carrying out recovery: settle the files the latest checkpoint lists and delete every
//! other temporary output file (see the module doc of `checkpoint`).

use std::path::{Path, PathBuf};

use super::model::{Checkpoint, OutputRoot};
use super::protocol::{Action, Probe, Refusal, is_temporary, journal_path, leftovers, recover_outputs, temp_path};
use crate::sink::SinkError;

/// The folders output lives in.
#[derive(Debug, Clone)]
pub struct Roots {
    /// Parquet sink folder.
    pub sink: PathBuf,
    /// Dead-letter folder.
    pub dead_letter: PathBuf,
    /// Checkpoint folder (never scanned for output).
    pub checkpoints: PathBuf,
}

impl Roots {
    fn dir(&self, root: OutputRoot) -> &Path {
        match root {
            OutputRoot::Sink => &self.sink,
            OutputRoot::DeadLetter => &self.dead_letter,
        }
    }
}

/// Why recovery failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The checkpoint and the files on disk disagree.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Renaming, cutting back or sealing a file failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Complete files renamed into place.
    pub renamed: usize,
    /// Open files cut back to the checkpoint and sealed.
    pub sealed: usize,
    /// Leftover temporary files deleted.
    pub deleted: usize,
}

/// Settle the output after `checkpoint` (or, with none, delete every temporary file).
pub fn recover(roots: &Roots, checkpoint: Option<&Checkpoint>) -> Result<Recovered, RecoverError> {
    let mut done = Recovered::default();
    let found = temporaries(roots)?;
    let stale = leftovers(checkpoint, found);
    if let Some(cp) = checkpoint {
        let actions = recover_outputs(cp, |f| probe(roots.dir(f.root), &f.path))?;
        for action in actions {
            match action {
                Action::Rename(f) => {
                    let dir = roots.dir(f.root);
                    let path = dir.join(&f.path);
                    std::fs::rename(dir.join(temp_path(&f.path)), &path)
                        .map_err(crate::sink::io_err("renaming into place", &path))?;
                    let _ = std::fs::remove_file(dir.join(journal_path(&f.path)));
                    sync_parent(&path)?;
                    done.renamed += 1;
                }
                Action::Seal { file, len, journal_len } => {
                    let dir = roots.dir(file.root);
                    let (tmp, path) = (dir.join(temp_path(&file.path)), dir.join(&file.path));
                    match file.root {
                        OutputRoot::Sink => {
                            crate::sink::parquet::seal(
                                &tmp,
                                &dir.join(journal_path(&file.path)),
                                len,
                                journal_len,
                                &path,
                            )?;
                        }
                        OutputRoot::DeadLetter => cut_and_commit(&tmp, len, &path)?,
                    }
                    done.sealed += 1;
                }
                Action::Nothing(f) => {
                    // The crash may have come between its rename and the journal's removal.
                    let _ = std::fs::remove_file(roots.dir(f.root).join(journal_path(&f.path)));
                }
            }
        }
    }
    for (root, rel) in stale {
        let path = roots.dir(root).join(&rel);
        if std::fs::remove_file(&path).is_ok() {
            done.deleted += 1;
        }
    }
    Ok(done)
}

fn probe(dir: &Path, path: &str) -> Probe {
    let len = |p: PathBuf| std::fs::metadata(p).ok().map(|m| m.len());
    Probe {
        temp_len: len(dir.join(temp_path(path))),
        journal_len: len(dir.join(journal_path(path))),
        in_place: dir.join(path).exists(),
    }
}

fn cut_and_commit(tmp: &Path, len: u64, path: &Path) -> Result<(), SinkError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(tmp)
        .map_err(crate::sink::io_err("opening", tmp))?;
    file.set_len(len)
        .and_then(|_| file.sync_all())
        .map_err(crate::sink::io_err("truncating", tmp))?;
    std::fs::rename(tmp, path).map_err(crate::sink::io_err("renaming into place", path))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), SinkError> {
    match path.parent() {
        Some(dir) => crate::sink::sync_dir(dir),
        None => Ok(()),
    }
}

/// Every temporary output file under the sink (not descending into the dead-letter or
/// checkpoint folders) and the dead-letter folder, relative to its root.
fn temporaries(roots: &Roots) -> Result<Vec<(OutputRoot, String)>, SinkError> {
    let mut found = Vec::new();
    let skip = [roots.dead_letter.as_path(), roots.checkpoints.as_path()];
    let mut stack = vec![roots.sink.clone()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::sink::io_err("listing", &dir)(e)),
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if !skip.contains(&path.as_path()) {
                    stack.push(path);
                }
            } else if is_temporary(&name)
                && let Ok(rel) = path.strip_prefix(&roots.sink)
            {
                found.push((OutputRoot::Sink, rel.to_string_lossy().into_owned()));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(&roots.dead_letter) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temporary(&name) {
                found.push((OutputRoot::DeadLetter, name));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::model::{FORMAT_VERSION, FileState, OutputFile, SourcePosition, Totals};

    #[test]
    fn a_journal_left_behind_a_committed_file_and_stray_temporaries_are_removed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let roots = Roots {
            sink: tmp.path().join("out"),
            dead_letter: tmp.path().join("out/_dead_letter"),
            checkpoints: tmp.path().join("out/_checkpoints"),
        };
        let dir = roots.sink.join("b=1");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::create_dir_all(&roots.dead_letter).expect("mkdir");
        // Renamed into place after the checkpoint, killed before its journal was removed.
        std::fs::write(dir.join("part-1.parquet"), b"done").expect("write");
        std::fs::write(dir.join(".part-1.parquet.inprogress.meta"), b"j").expect("write");
        // Leftovers of the interrupted epoch.
        std::fs::write(dir.join(".part-9.parquet.inprogress"), b"x").expect("write");
        std::fs::write(roots.dead_letter.join(".dlq-9.jsonl.inprogress"), b"x").expect("write");
        let checkpoint = Checkpoint {
            format: FORMAT_VERSION,
            sluice_version: "test".into(),
            epoch: 3,
            pipeline: "p".into(),
            source: "file:/in".into(),
            position: SourcePosition::default(),
            finished: false,
            stateful_stages: Vec::new(),
            states: Vec::new(),
            watermarks: Vec::new(),
            outputs: vec![OutputFile {
                root: OutputRoot::Sink,
                path: "b=1/part-1.parquet".into(),
                state: FileState::Sealed,
            }],
            totals: Totals::default(),
        };
        let done = recover(&roots, Some(&checkpoint)).expect("recover");
        assert_eq!(done.deleted, 2);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["part-1.parquet".to_owned()]);
        assert_eq!(std::fs::read_dir(&roots.dead_letter).expect("dir").count(), 0);
    }
}
