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

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::Bytes;

use super::{StagedFile, Storage};
use crate::aws::s3::{Failure, S3Conn, S3Location, retrying_async};
use crate::checkpoint::protocol::{Probe, journal_path, temp_path};
use crate::checkpoint::{OutputFile, Part, Upload};
use crate::sink::SinkError;

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

/// The client and the bucket, shared by a sink's storage and its open files.
#[derive(Debug)]
struct Objects {
    conn: S3Conn,
    location: S3Location,
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
            objects: Arc::new(Objects { conn, location }),
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
        Ok(Box::new(S3File {
            objects: self.objects.clone(),
            key: self.key(rel),
            temp: self.key(&temp_path(rel)),
            part_bytes: self.part_bytes,
            id: None,
            parts: Vec::new(),
            pending: VecDeque::new(),
            buf: Vec::new(),
            parts_end: 0,
            synced: 0,
        }))
    }

    fn journal(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        Ok(Box::new(S3Journal {
            objects: self.objects.clone(),
            key: self.key(&journal_path(rel)),
            bytes: Vec::new(),
            stored: 0,
        }))
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
            let Some(rel) = ours(&key) else { continue };
            let (dir, name) = match rel.rsplit_once('/') {
                Some((d, n)) => (Some(d), n),
                None => (None, rel.as_str()),
            };
            if let Some(hidden) = name.strip_prefix('.')
                && let Some((stem, _)) = hidden.split_once(crate::checkpoint::protocol::TEMP_SUFFIX)
            {
                let rel = match dir {
                    Some(d) => format!("{d}/{stem}"),
                    None => stem.to_owned(),
                };
                found.insert(temp_path(&rel));
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Every upload still in progress under the prefix belongs to no checkpoint now: the
    /// listed ones were completed, and the rest hold rows that will be written again.
    fn end_recovery(&self) -> Result<usize, SinkError> {
        let prefix = &self.objects.location.prefix;
        let uploads = self
            .run(self.objects.uploads(prefix))
            .map_err(self.failed("listing uploads of", prefix))?;
        let mut aborted = 0;
        for (key, id) in uploads {
            if !self.skip.iter().any(|s| key.starts_with(s.as_str())) {
                self.run(self.objects.abort(&key, &id))
                    .map_err(self.failed("aborting the upload of", &key))?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    fn remove_temporary(&self, temp_rel: &str) -> Result<bool, SinkError> {
        let Some(rel) = final_path(temp_rel) else {
            return Ok(false);
        };
        self.clean(&rel)
    }
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

/// A file being written as a multipart upload (see the module doc).
struct S3File {
    objects: Arc<Objects>,
    key: String,
    temp: String,
    part_bytes: usize,
    /// The upload, once the first part is cut.
    id: Option<String>,
    /// Parts uploaded and confirmed.
    parts: Vec<Part>,
    /// Parts on their way.
    pending: VecDeque<tokio::task::JoinHandle<Result<Part, Failure>>>,
    /// Bytes after the parts (cut or pending).
    buf: Vec<u8>,
    /// Offset of `buf`'s first byte.
    parts_end: u64,
    /// Bytes made durable by the last `sync`.
    synced: u64,
}

fn io_failure(what: &str, f: Failure) -> std::io::Error {
    std::io::Error::other(format!("{what}: {}", f.message))
}

impl S3File {
    fn url(&self) -> String {
        self.objects.location.url(&self.key)
    }

    /// Cut the buffer as the next part and start uploading it.
    fn cut(&mut self) -> std::io::Result<()> {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .objects
                    .conn
                    .runtime
                    .block_on(self.objects.create_upload(&self.key))
                    .map_err(|f| io_failure(&format!("starting an upload of {}", self.url()), f))?;
                self.id.insert(id).clone()
            }
        };
        let number = (self.parts.len() + self.pending.len() + 1) as i32;
        let body = Bytes::from(std::mem::take(&mut self.buf));
        self.parts_end += body.len() as u64;
        let objects = self.objects.clone();
        let key = self.key.clone();
        let task = self
            .objects
            .conn
            .runtime
            .spawn(async move { objects.upload_part(&key, &id, number, body).await });
        self.pending.push_back(task);
        while self.pending.len() > IN_FLIGHT {
            self.wait_one()?;
        }
        Ok(())
    }

    /// Wait for the oldest part in flight.
    fn wait_one(&mut self) -> std::io::Result<()> {
        let Some(task) = self.pending.pop_front() else {
            return Ok(());
        };
        let part = self
            .objects
            .conn
            .runtime
            .block_on(task)
            .map_err(|e| std::io::Error::other(format!("uploading a part of {}: {e}", self.url())))?
            .map_err(|f| io_failure(&format!("uploading a part of {}", self.url()), f))?;
        self.parts.push(part);
        Ok(())
    }

    fn wait_all(&mut self) -> std::io::Result<()> {
        while !self.pending.is_empty() {
            self.wait_one()?;
        }
        Ok(())
    }
}

impl std::io::Write for S3File {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.part_bytes {
            self.cut()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl StagedFile for S3File {
    fn sync(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= MIN_PART_BYTES {
            self.cut()?;
        }
        self.wait_all()?;
        let end = self.parts_end + self.buf.len() as u64;
        let from = self.synced.max(self.parts_end);
        if end > from {
            let tail = format!("{}.tail-{:020}-{from:020}", self.temp, self.parts_end);
            let body = Bytes::copy_from_slice(&self.buf[(from - self.parts_end) as usize..]);
            self.objects
                .conn
                .runtime
                .block_on(self.objects.put(&tail, body))
                .map_err(|f| io_failure(&format!("writing {}", self.objects.location.url(&tail)), f))?;
        }
        self.synced = end;
        Ok(())
    }

    fn seal(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() || self.parts.len() + self.pending.len() == 0 {
            self.cut()?;
        }
        self.wait_all()?;
        self.synced = self.parts_end;
        Ok(())
    }

    fn upload(&self) -> Option<Upload> {
        Some(Upload {
            id: self.id.clone(),
            parts: self.parts.clone(),
        })
    }
}

impl Drop for S3File {
    fn drop(&mut self) {
        for task in &self.pending {
            task.abort();
        }
    }
}

/// A Parquet file's journal: kept whole in memory, rewritten whole at each `sync`.
struct S3Journal {
    objects: Arc<Objects>,
    key: String,
    bytes: Vec<u8>,
    stored: usize,
}

impl std::io::Write for S3Journal {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl StagedFile for S3Journal {
    fn sync(&mut self) -> std::io::Result<()> {
        if self.bytes.len() == self.stored {
            return Ok(());
        }
        let body = Bytes::copy_from_slice(&self.bytes);
        self.objects
            .conn
            .runtime
            .block_on(self.objects.put(&self.key, body))
            .map_err(|f| io_failure(&format!("writing {}", self.objects.location.url(&self.key)), f))?;
        self.stored = self.bytes.len();
        Ok(())
    }
}

/// The S3 calls the sink makes, each retried by [`retrying_async`].
impl Objects {
    fn bucket(&self) -> &str {
        &self.location.bucket
    }

    /// Start an upload of `key`. A retried request whose first attempt did create an upload
    /// (its answer lost) leaves that one behind: it is aborted here.
    async fn create_upload(&self, key: &str) -> Result<String, Failure> {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let id = retrying_async(|| async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let out = self
                .conn
                .client
                .create_multipart_upload()
                .bucket(self.bucket())
                .key(key)
                .send()
                .await
                .map_err(Failure::from_sdk)?;
            out.upload_id()
                .map(str::to_owned)
                .ok_or_else(|| Failure::other("CreateMultipartUpload answered without an upload id"))
        })
        .await?;
        if attempts.into_inner() > 1 {
            for (k, other) in self.uploads(key).await? {
                if k == key && other != id {
                    self.abort(&k, &other).await?;
                }
            }
        }
        Ok(id)
    }

    async fn upload_part(&self, key: &str, id: &str, number: i32, body: Bytes) -> Result<Part, Failure> {
        let size = body.len() as u64;
        retrying_async(|| {
            let body = body.clone();
            async move {
                let out = self
                    .conn
                    .client
                    .upload_part()
                    .bucket(self.bucket())
                    .key(key)
                    .upload_id(id)
                    .part_number(number)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(Failure::from_sdk)?;
                let etag = out
                    .e_tag()
                    .ok_or_else(|| Failure::other("UploadPart answered without an ETag"))?;
                Ok(Part {
                    number,
                    etag: etag.to_owned(),
                    size,
                })
            }
        })
        .await
    }

    async fn complete(&self, key: &str, id: &str, parts: &[Part]) -> Result<(), Failure> {
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| CompletedPart::builder().part_number(p.number).e_tag(&p.etag).build())
                    .collect(),
            ))
            .build();
        retrying_async(|| async {
            self.conn
                .client
                .complete_multipart_upload()
                .bucket(self.bucket())
                .key(key)
                .upload_id(id)
                .multipart_upload(done.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(Failure::from_sdk)
        })
        .await
    }

    async fn abort(&self, key: &str, id: &str) -> Result<(), Failure> {
        let aborted = retrying_async(|| async {
            self.conn
                .client
                .abort_multipart_upload()
                .bucket(self.bucket())
                .key(key)
                .upload_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(Failure::from_sdk)
        })
        .await;
        match aborted {
            Err(f) if f.is("NoSuchUpload") => Ok(()),
            other => other,
        }
    }

    /// Uploads in progress whose key starts with `prefix`: (key, upload id).
    async fn uploads(&self, prefix: &str) -> Result<Vec<(String, String)>, Failure> {
        let mut found = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = retrying_async(|| async {
                self.conn
                    .client
                    .list_multipart_uploads()
                    .bucket(self.bucket())
                    .prefix(prefix)
                    .set_key_marker(markers.0.clone())
                    .set_upload_id_marker(markers.1.clone())
                    .send()
                    .await
                    .map_err(Failure::from_sdk)
            })
            .await?;
            found.extend(
                page.uploads()
                    .iter()
                    .filter_map(|u| Some((u.key()?.to_owned(), u.upload_id()?.to_owned()))),
            );
            if page.is_truncated() != Some(true) {
                return Ok(found);
            }
            markers = (
                page.next_key_marker().map(str::to_owned),
                page.next_upload_id_marker().map(str::to_owned),
            );
        }
    }

    /// Objects whose key starts with `prefix`: (key, size).
    async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Failure> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retrying_async(|| async {
                self.conn
                    .client
                    .list_objects_v2()
                    .bucket(self.bucket())
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(Failure::from_sdk)
            })
            .await?;
            found.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| Some((o.key()?.to_owned(), o.size().unwrap_or(0) as u64))),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    /// An object's size, or `None` if there is none.
    async fn head(&self, key: &str) -> Result<Option<u64>, Failure> {
        let head = retrying_async(|| async {
            self.conn
                .client
                .head_object()
                .bucket(self.bucket())
                .key(key)
                .send()
                .await
                .map_err(Failure::from_sdk)
        })
        .await;
        match head {
            Ok(h) => Ok(Some(h.content_length().unwrap_or(0) as u64)),
            Err(f) if f.status == Some(404) => Ok(None),
            Err(f) => Err(f),
        }
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, Failure> {
        retrying_async(|| async {
            let object = self
                .conn
                .client
                .get_object()
                .bucket(self.bucket())
                .key(key)
                .send()
                .await
                .map_err(Failure::from_sdk)?;
            let bytes = object.body.collect().await.map_err(Failure::body)?;
            Ok(bytes.to_vec())
        })
        .await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), Failure> {
        retrying_async(|| {
            let body = body.clone();
            async move {
                self.conn
                    .client
                    .put_object()
                    .bucket(self.bucket())
                    .key(key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Failure::from_sdk)
            }
        })
        .await
    }

    /// Delete objects, a thousand per request.
    async fn delete(&self, keys: Vec<String>) -> Result<(), Failure> {
        for batch in keys.chunks(1000) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::other(&e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Failure::other(&e.to_string()))?;
            retrying_async(|| async {
                self.conn
                    .client
                    .delete_objects()
                    .bucket(self.bucket())
                    .delete(delete.clone())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Failure::from_sdk)
            })
            .await?;
        }
        Ok(())
    }
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
    }

    #[test]
    fn the_durable_tail_is_the_run_of_tail_objects_that_follows_the_parts() {
        let t = |from: u64, size: u64| (from, format!("t-{from}"), size);
        assert_eq!(S3Dir::contiguous_tail(&[t(10, 5), t(15, 3), t(20, 4)], 10), 8);
        assert_eq!(S3Dir::contiguous_tail(&[t(12, 5)], 10), 0);
        assert_eq!(S3Dir::contiguous_tail(&[], 10), 0);
    }
}
