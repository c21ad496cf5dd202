//! A sink's prefix in an S3 bucket: the two-phase commit of `storage` over multipart uploads.
//!
//! # How a file is written
//! A file is a multipart upload of its final key, invisible to readers until
//! `CompleteMultipartUpload`. Its bytes are buffered; each time [`S3Dir::part_bytes`] have
//! gathered they are cut as a part and uploaded on the client's runtime while the writer goes
//! on (at most [`IN_FLIGHT`] parts per file wait to finish).
//!
//! # What a checkpoint holds
//! At a checkpoint (`sync`) the in-flight parts are awaited. The bytes after the last part (the
//! tail) cannot be a part yet: S3 refuses parts under 5 MiB except the last. A tail of 5 MiB or
//! more is uploaded as a part; a smaller one is made durable as a *tail object*
//! `dir/.name.inprogress.tail-<P>-<from>` holding the bytes since the last checkpoint, where
//! `P` is the length of the parts and `from` the offset of its first byte (both 20 digits).
//! The checkpoint records the upload id, the parts (number, ETag, size) and the durable length.
//! Nothing is ever overwritten: parts are numbered once, and a tail object's name says which
//! bytes it holds, so what a checkpoint lists stays as it was whatever happened after it.
//! A Parquet file's row-group journal is the object `dir/.name.inprogress.meta`, rewritten
//! whole at each checkpoint; it only ever grows, so every earlier length reads the same bytes.
//!
//! # Publishing and recovery
//! Publishing a sealed file completes its upload with the parts the checkpoint listed, then
//! deletes its tail objects and journal. Recovering an open file reads the tail objects from
//! `P` up to the checkpoint's length, uploads them with the trailer (a Parquet footer from the
//! journal) as the last part, and completes the upload with the listed parts before it. Every
//! other temporary object under the prefix belongs to no checkpoint and is deleted, and at the
//! end every upload still in progress under it is aborted, so none is left behind (a retried
//! `CreateMultipartUpload` whose first answer was lost aborts the extra upload itself).
//!
//! Names starting with `.` are hidden from Athena, Glue, Spark and DuckDB's Hive reader.

mod calls;
mod file;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::{StagedFile, Storage};
use crate::aws::s3::{Failure, S3Conn, S3Location};
use crate::checkpoint::protocol::{Probe, journal_path, temp_path};
use crate::checkpoint::{OutputFile, Part, Upload};
use crate::sink::SinkError;
use calls::Objects;
use file::{S3File, S3Journal};

/// S3's smallest part (except the last).
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one file uploading at once before the writer waits for the oldest.
pub const IN_FLIGHT: usize = 2;
/// Worker threads of the client's runtime, which carry the uploads.
const WORKERS: usize = 2;

/// A sink's bucket and prefix.
#[derive(Debug, Clone)]
pub struct S3Dir {
    objects: Arc<Objects>,
    /// Bytes per part.
    part_bytes: usize,
    /// Prefixes under ours that belong to other sinks (or the checkpoints): never scanned.
    skip: Vec<String>,
}

impl S3Dir {
    /// A sink writing under `location` with parts of `part_bytes` (at least
    /// [`MIN_PART_BYTES`]); `skip` lists key prefixes under it that belong to others.
    pub fn new(location: S3Location, part_bytes: usize, skip: Vec<String>) -> Result<Self, SinkError> {
        let conn = S3Conn::connect(&location, WORKERS).map_err(|message| SinkError::Remote {
            action: "connecting to",
            what: location.url(&location.prefix),
            message,
        })?;
        Ok(S3Dir {
            objects: Arc::new(Objects::new(conn, location)),
            part_bytes: part_bytes.max(MIN_PART_BYTES),
            skip,
        })
    }

    /// Bytes per part.
    pub fn part_bytes(&self) -> usize {
        self.part_bytes
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.objects.location.prefix)
    }

    fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        self.objects.conn.runtime.block_on(fut)
    }

    fn failed(&self, action: &'static str, key: &str) -> impl FnOnce(Failure) -> SinkError {
        let what = self.objects.location.url(key);
        move |f| SinkError::Remote {
            action,
            what,
            message: f.message,
        }
    }

    /// The upload a checkpoint lists for `file`; an S3 sink always records one.
    fn upload_of<'a>(&self, file: &'a OutputFile) -> Result<&'a Upload, SinkError> {
        file.upload.as_ref().ok_or_else(|| SinkError::Remote {
            action: "recovering",
            what: self.objects.location.url(&self.key(&file.path)),
            message: "the checkpoint lists no multipart upload for this file: it was written by a sink that was not on S3; run with --from-scratch".to_owned(),
        })
    }

    /// The tail objects of `rel` after parts of `parts_len` bytes: (from, key, size), by offset.
    fn tails(&self, rel: &str, parts_len: u64) -> Result<Vec<(u64, String, u64)>, SinkError> {
        let prefix = format!("{}.tail-{parts_len:020}-", self.key(&temp_path(rel)));
        let listed = self
            .run(self.objects.list(&prefix))
            .map_err(self.failed("listing", &prefix))?;
        let mut tails: Vec<(u64, String, u64)> = listed
            .into_iter()
            .filter_map(|(key, size)| Some((key.strip_prefix(&prefix)?.parse().ok()?, key, size)))
            .collect();
        tails.sort();
        Ok(tails)
    }

    /// Durable bytes after the parts: the tail objects that follow on from `parts_len`.
    fn contiguous_tail(tails: &[(u64, String, u64)], parts_len: u64) -> u64 {
        let mut end = parts_len;
        for (from, _, size) in tails {
            if *from != end {
                break;
            }
            end += size;
        }
        end - parts_len
    }

    /// Delete the temporary objects of `rel` (tail objects, journal).
    fn clean(&self, rel: &str) -> Result<bool, SinkError> {
        let temp = self.key(&temp_path(rel));
        let objects = self
            .run(self.objects.list(&temp))
            .map_err(self.failed("listing", &temp))?;
        if objects.is_empty() {
            return Ok(false);
        }
        let keys = objects.into_iter().map(|(k, _)| k).collect();
        self.run(self.objects.delete(keys))
            .map_err(self.failed("deleting", &temp))?;
        Ok(true)
    }

    /// Complete `rel`'s upload with `parts`; an upload already completed (its object in place)
    /// is success.
    fn complete(&self, rel: &str, id: &str, parts: &[Part]) -> Result<(), SinkError> {
        let key = self.key(rel);
        match self.run(self.objects.complete(&key, id, parts)) {
            Ok(()) => Ok(()),
            Err(f) if f.is("NoSuchUpload") && self.run(self.objects.head(&key)).ok().flatten().is_some() => Ok(()),
            Err(f) => Err(self.failed("completing the upload of", &key)(f)),
        }
    }
}

impl Storage for S3Dir {
    fn location(&self) -> String {
        self.objects.location.url(&self.objects.location.prefix)
    }

    fn create(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        Ok(Box::new(S3File::new(
            self.objects.clone(),
            self.key(rel),
            self.key(&temp_path(rel)),
            self.part_bytes,
        )))
    }

    fn journal(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        Ok(Box::new(S3Journal::new(
            self.objects.clone(),
            self.key(&journal_path(rel)),
        )))
    }

    fn publish(&self, files: &[OutputFile]) -> Result<(), SinkError> {
        for file in files {
            let upload = self.upload_of(file)?;
            let Some(id) = upload.id.as_deref() else {
                return Err(self.failed("publishing", &self.key(&file.path))(Failure::other(
                    "a sealed file has no multipart upload",
                )));
            };
            self.complete(&file.path, id, &upload.parts)?;
            crate::fault::point("output-renamed");
            self.clean(&file.path)?;
        }
        Ok(())
    }

    fn probe(&self, file: &OutputFile) -> Result<Probe, SinkError> {
        let key = self.key(&file.path);
        let journal = self.key(&journal_path(&file.path));
        let in_place = self
            .run(self.objects.head(&key))
            .map_err(self.failed("reading", &key))?
            .is_some();
        let journal_len = self
            .run(self.objects.head(&journal))
            .map_err(self.failed("reading", &journal))?;
        if in_place {
            // Published by the commit after the checkpoint, or by an earlier recovery.
            return Ok(Probe {
                temp_len: None,
                journal_len,
                in_place,
            });
        }
        let upload = self.upload_of(file)?;
        // The listed parts are taken as recorded: CompleteMultipartUpload checks each one's
        // ETag. (Not ListParts: moto answers it under another root element than S3.)
        if let Some(id) = upload.id.as_deref() {
            let uploads = self
                .run(self.objects.uploads(&key))
                .map_err(self.failed("listing uploads of", &key))?;
            if !uploads.iter().any(|(k, u)| *k == key && u == id) {
                return Ok(Probe {
                    temp_len: None,
                    journal_len,
                    in_place,
                });
            }
        }
        let parts_len = upload.bytes();
        let durable = parts_len + Self::contiguous_tail(&self.tails(&file.path, parts_len)?, parts_len);
        Ok(Probe {
            temp_len: Some(durable),
            journal_len,
            in_place,
        })
    }

    fn seal(&self, file: &OutputFile, len: u64, trailer: &[u8]) -> Result<(), SinkError> {
        let key = self.key(&file.path);
        let upload = self.upload_of(file)?;
        let parts_len = upload.bytes();
        // The durable tail, then the trailer: the last part.
        let mut last = Vec::with_capacity((len.saturating_sub(parts_len)) as usize + trailer.len());
        for (from, tail, _) in self.tails(&file.path, parts_len)? {
            if from >= len {
                break;
            }
            let bytes = self
                .run(self.objects.get(&tail))
                .map_err(self.failed("reading", &tail))?;
            last.extend_from_slice(&bytes);
        }
        last.truncate((len - parts_len) as usize);
        last.extend_from_slice(trailer);
        let id = match upload.id.clone() {
            Some(id) => id,
            None => self
                .run(self.objects.create_upload(&key))
                .map_err(self.failed("starting an upload of", &key))?,
        };
        let mut parts = upload.parts.clone();
        if !last.is_empty() || parts.is_empty() {
            let number = parts.last().map_or(1, |p| p.number + 1);
            let part = self
                .run(self.objects.upload_part(&key, &id, number, Bytes::from(last)))
                .map_err(self.failed("uploading a part of", &key))?;
            parts.push(part);
        }
        self.complete(&file.path, &id, &parts)?;
        self.clean(&file.path)?;
        Ok(())
    }

    fn read_journal(&self, rel: &str, len: u64) -> Result<Vec<u8>, SinkError> {
        let key = self.key(&journal_path(rel));
        let mut bytes = self.run(self.objects.get(&key)).map_err(self.failed("reading", &key))?;
        bytes.truncate(len as usize);
        Ok(bytes)
    }

    fn forget(&self, rel: &str) -> Result<(), SinkError> {
        self.clean(rel).map(|_| ())
    }

    fn temporaries(&self) -> Result<Vec<String>, SinkError> {
        let prefix = &self.objects.location.prefix;
        let ours = |key: &str| -> Option<String> {
            let rel = key.strip_prefix(prefix.as_str())?;
            (!self.skip.iter().any(|s| key.starts_with(s.as_str()))).then(|| rel.to_owned())
        };
        // Uploads in progress are left to `end_recovery`.
        let mut found = BTreeSet::new();
        let objects = self
            .run(self.objects.list(prefix))
            .map_err(self.failed("listing", prefix))?;
        for (key, _) in objects {
            if let Some(temp) = ours(&key).as_deref().and_then(temporary_of) {
                found.insert(temp.to_owned());
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Every upload still in progress under the prefix belongs to no checkpoint now: the
    /// listed ones were completed, and the rest hold rows that will be written again.
    fn end_recovery(&self, lane: Option<&str>) -> Result<usize, SinkError> {
        let prefix = &self.objects.location.prefix;
        let uploads = self
            .run(self.objects.uploads(prefix))
            .map_err(self.failed("listing uploads of", prefix))?;
        let mut aborted = 0;
        for (key, id) in uploads {
            let file = key.rsplit('/').next().unwrap_or(&key);
            let in_lane = lane.is_none_or(|l| file.strip_prefix(l).is_some_and(|r| r.starts_with('-')));
            if in_lane && !self.skip.iter().any(|s| key.starts_with(s.as_str())) {
                self.run(self.objects.abort(&key, &id))
                    .map_err(self.failed("aborting the upload of", &key))?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    fn settle(&self) -> Result<(), SinkError> {
        self.objects
            .settle()
            .map_err(|(key, f)| self.failed("writing", &key)(f))
    }

    fn remove_temporary(&self, temp_rel: &str) -> Result<bool, SinkError> {
        let Some(rel) = final_path(temp_rel) else {
            return Ok(false);
        };
        self.clean(&rel)
    }
}

/// The temporary path a hidden object belongs to (`dir/.name.inprogress.tail-…` and
/// `dir/.name.inprogress.meta` → `dir/.name.inprogress`); `None` for any other object.
fn temporary_of(rel: &str) -> Option<&str> {
    let name_at = rel.rfind('/').map_or(0, |i| i + 1);
    let name = &rel[name_at..];
    let end = name.find(crate::checkpoint::protocol::TEMP_SUFFIX)? + crate::checkpoint::protocol::TEMP_SUFFIX.len();
    name.starts_with('.').then(|| &rel[..name_at + end])
}

/// The final path of a temporary path (`dir/.name.inprogress` → `dir/name`).
fn final_path(temp_rel: &str) -> Option<String> {
    let (dir, name) = match temp_rel.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, temp_rel),
    };
    let stem = name
        .strip_prefix('.')?
        .strip_suffix(crate::checkpoint::protocol::TEMP_SUFFIX)?;
    Some(match dir {
        Some(d) => format!("{d}/{stem}"),
        None => stem.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_paths_lead_back_to_their_files() {
        assert_eq!(
            final_path(&temp_path("a=1/part-1.parquet")).as_deref(),
            Some("a=1/part-1.parquet")
        );
        assert_eq!(final_path(&temp_path("x.gz")).as_deref(), Some("x.gz"));
        assert_eq!(final_path("a/part-1.parquet"), None);
        let temp = temp_path("a=1/part-1.parquet");
        for object in [format!("{temp}.tail-{:020}-{:020}", 0, 7), format!("{temp}.meta")] {
            assert_eq!(temporary_of(&object), Some(temp.as_str()));
        }
        assert_eq!(temporary_of(".x.gz.inprogress.meta"), Some(".x.gz.inprogress"));
        assert_eq!(temporary_of("a=1/part-1.parquet"), None);
        assert_eq!(temporary_of("a.inprogress/part-1.parquet"), None);
    }

    #[test]
    fn the_durable_tail_is_the_run_of_tail_objects_that_follows_the_parts() {
        let t = |from: u64, size: u64| (from, format!("t-{from}"), size);
        assert_eq!(S3Dir::contiguous_tail(&[t(10, 5), t(15, 3), t(20, 4)], 10), 8);
        assert_eq!(S3Dir::contiguous_tail(&[t(12, 5)], 10), 0);
        assert_eq!(S3Dir::contiguous_tail(&[], 10), 0);
    }
}
