//! Carrying out recovery: settle the files the latest checkpoint lists and delete every
//! other temporary output file (see the module doc of `checkpoint`). The decisions are
//! `checkpoint::protocol`'s; this applies them to each sink's storage.

use super::{Sealing, SinkError, Storage};
use crate::checkpoint::protocol::{Action, Refusal, leftovers, recover_outputs};
use crate::checkpoint::{Checkpoint, OutputFile};

/// Why recovery failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The checkpoint and the files on disk disagree.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Renaming, cutting back or sealing a file failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The checkpoint lists output of a sink this pipeline does not have.
    #[error(
        "the checkpoint lists output of sink `{0}`, which this pipeline does not have; its files would be left half-written. Restore the sink, or run with --from-scratch"
    )]
    UnknownSink(String),
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

/// A sink's storage as recovery sees it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The sink's name (the `root` of its files in checkpoints).
    pub name: &'a str,
    /// Where its files are.
    pub storage: &'a dyn Storage,
    /// How its open files are finished.
    pub sealing: Sealing,
}

/// Settle the output of every sink after `checkpoint` (or, with none, delete every
/// temporary file). Files of the sinks in `gone` (removed by a reload, which published
/// them) are left alone; files of any other sink the pipeline lacks are refused.
pub fn recover(
    targets: &[Target<'_>],
    checkpoint: Option<&Checkpoint>,
    gone: &[String],
) -> Result<Recovered, RecoverError> {
    if let Some(cp) = checkpoint
        && let Some(f) = cp
            .outputs
            .iter()
            .find(|f| !targets.iter().any(|t| t.name == f.root) && !gone.contains(&f.root))
    {
        return Err(RecoverError::UnknownSink(f.root.clone()));
    }
    let kept;
    let checkpoint = match checkpoint {
        Some(cp) if !gone.is_empty() => {
            let mut cp = cp.clone();
            cp.outputs.retain(|f| !gone.contains(&f.root));
            kept = cp;
            Some(&kept)
        }
        other => other,
    };
    let target = |name: &str| targets.iter().find(|t| t.name == name).copied();
    let mut found = Vec::new();
    for t in targets {
        found.extend(t.storage.temporaries()?.into_iter().map(|rel| (t.name.to_owned(), rel)));
    }
    let stale = leftovers(checkpoint, found);
    let mut done = Recovered::default();
    if let Some(cp) = checkpoint {
        let mut probes = std::collections::HashMap::new();
        for f in &cp.outputs {
            if let Some(t) = target(&f.root) {
                probes.insert((f.root.clone(), f.path.clone()), t.storage.probe(f)?);
            }
        }
        let actions = recover_outputs(cp, |f| {
            probes
                .get(&(f.root.clone(), f.path.clone()))
                .copied()
                .unwrap_or_default()
        })?;
        for action in actions {
            let Some(t) = target(action.file().root.as_str()) else {
                continue;
            };
            match action {
                Action::Rename(f) => {
                    t.storage.publish(std::slice::from_ref(&f))?;
                    done.renamed += 1;
                }
                Action::Seal { file, len, journal_len } => {
                    seal(t, &file, len, journal_len)?;
                    done.sealed += 1;
                }
                // The crash may have come between its rename and the journal's removal.
                Action::Nothing(f) => t.storage.forget(&f.path)?,
            }
        }
    }
    for (root, rel) in stale {
        if let Some(t) = target(&root)
            && t.storage.remove_temporary(&rel)?
        {
            done.deleted += 1;
        }
    }
    for t in targets {
        done.deleted += t.storage.end_recovery(None)?;
    }
    Ok(done)
}

/// Finish a file that was open at the checkpoint so it holds exactly its rows, and publish.
fn seal(t: Target<'_>, file: &OutputFile, len: u64, journal_len: u64) -> Result<(), SinkError> {
    let trailer = match t.sealing {
        Sealing::Footer => {
            let journal = t.storage.read_journal(&file.path, journal_len)?;
            super::parquet::footer_from_journal(&journal).map_err(|error| SinkError::Parquet {
                path: file.path.clone().into(),
                error,
            })?
        }
        Sealing::CutBack => Vec::new(),
    };
    t.storage.seal(file, len, &trailer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::model::{FORMAT_VERSION, FileState, SourcePosition, Totals};
    use crate::sink::storage::LocalDir;

    #[test]
    fn a_journal_left_behind_a_committed_file_and_stray_temporaries_are_removed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        let dead_dir = out.join("_dead_letter");
        let sink = LocalDir::new(out.clone(), vec![dead_dir.clone(), out.join("_checkpoints")]);
        let dead = LocalDir::new(dead_dir.clone(), Vec::new());
        let dir = out.join("b=1");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::create_dir_all(&dead_dir).expect("mkdir");
        // Renamed into place after the checkpoint, killed before its journal was removed.
        std::fs::write(dir.join("part-1.parquet"), b"done").expect("write");
        std::fs::write(dir.join(".part-1.parquet.inprogress.meta"), b"j").expect("write");
        // Leftovers of the interrupted epoch.
        std::fs::write(dir.join(".part-9.parquet.inprogress"), b"x").expect("write");
        std::fs::write(dead_dir.join(".dlq-9.jsonl.inprogress"), b"x").expect("write");
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
                root: "sink".into(),
                path: "b=1/part-1.parquet".into(),
                state: FileState::Sealed,
                upload: None,
            }],
            totals: Totals::default(),
        };
        let targets = [
            Target {
                name: "sink",
                storage: &sink,
                sealing: Sealing::Footer,
            },
            Target {
                name: "dead_letter",
                storage: &dead,
                sealing: Sealing::CutBack,
            },
        ];
        let done = recover(&targets, Some(&checkpoint), &[]).expect("recover");
        assert_eq!(done.deleted, 2);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["part-1.parquet".to_owned()]);
        assert_eq!(std::fs::read_dir(&dead_dir).expect("dir").count(), 0);
        let unknown = Checkpoint {
            outputs: vec![OutputFile {
                root: "archive".into(),
                path: "a.gz".into(),
                state: FileState::Sealed,
                upload: None,
            }],
            ..checkpoint
        };
        assert!(matches!(
            recover(&targets, Some(&unknown), &[]),
            Err(RecoverError::UnknownSink(name)) if name == "archive"
        ));
        // A reload that removed the sink published its files before the restart.
        assert!(recover(&targets, Some(&unknown), &["archive".to_owned()]).is_ok());
    }
}
