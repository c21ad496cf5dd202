//! The S3 calls an S3 sink makes, each retried by [`retrying_async`].

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::Bytes;

use crate::aws::s3::{Failure, S3Conn, S3Location, retrying_async};
use crate::checkpoint::Part;

/// The client and the bucket, shared by a sink's storage and its open files.
#[derive(Debug)]
pub(super) struct Objects {
    pub(super) conn: S3Conn,
    pub(super) location: S3Location,
    /// Writes started by `sync`s and not yet awaited.
    writes: std::sync::Mutex<Vec<Started>>,
}

/// A write started in the background: its key and its task.
type Started = (String, tokio::task::JoinHandle<Result<(), Failure>>);

impl Objects {
    pub(super) fn new(conn: S3Conn, location: S3Location) -> Self {
        Objects {
            conn,
            location,
            writes: Default::default(),
        }
    }

    fn bucket(&self) -> &str {
        &self.location.bucket
    }

    /// Start writing `body` to `key` in the background; [`Objects::settle`] waits for it.
    /// The open files of a sink write their tails and journals at a checkpoint this way, all
    /// at once rather than one round trip after another.
    pub(super) fn put_soon(self: &std::sync::Arc<Self>, key: String, body: Bytes) {
        let objects = self.clone();
        let k = key.clone();
        let task = self.conn.runtime.spawn(async move { objects.put(&k, body).await });
        self.writes.lock().unwrap_or_else(|e| e.into_inner()).push((key, task));
    }

    /// Wait for every write [`Objects::put_soon`] started; the first that failed, with its key.
    pub(super) fn settle(&self) -> Result<(), (String, Failure)> {
        let writes = std::mem::take(&mut *self.writes.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first = None;
        for (key, task) in writes {
            let done = self
                .conn
                .runtime
                .block_on(task)
                .unwrap_or_else(|e| Err(Failure::other(&format!("the upload task failed: {e}"))));
            if let Err(f) = done {
                first.get_or_insert((key, f));
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Start an upload of `key`. A retried request whose first attempt did create an upload
    /// (its answer lost) leaves that one behind: it is aborted here.
    pub(super) async fn create_upload(&self, key: &str) -> Result<String, Failure> {
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

    pub(super) async fn upload_part(&self, key: &str, id: &str, number: i32, body: Bytes) -> Result<Part, Failure> {
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

    pub(super) async fn complete(&self, key: &str, id: &str, parts: &[Part]) -> Result<(), Failure> {
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

    pub(super) async fn abort(&self, key: &str, id: &str) -> Result<(), Failure> {
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
    pub(super) async fn uploads(&self, prefix: &str) -> Result<Vec<(String, String)>, Failure> {
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
    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Failure> {
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
    pub(super) async fn head(&self, key: &str) -> Result<Option<u64>, Failure> {
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

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>, Failure> {
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

    pub(super) async fn put(&self, key: &str, body: Bytes) -> Result<(), Failure> {
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
    pub(super) async fn delete(&self, keys: Vec<String>) -> Result<(), Failure> {
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
