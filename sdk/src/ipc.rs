//! The guest's side of the IPC framing: the contract's helpers, and trust in the host's batches.

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamDecoder;
pub(crate) use sluice_contract::ipc::{decode_schema, encode_batch, encode_schema};

/// Decode a batch the Sluice host sent to this transform. The host only sends batches it
/// decoded natively or validated on their way out of the previous transform, so the
/// structure is still checked but array contents (e.g. UTF-8 of every string) are not
/// re-validated inside the sandbox.
pub(crate) fn decode_batch_from_host(bytes: Vec<u8>) -> Result<RecordBatch, ArrowError> {
    // SAFETY: the bytes are an IPC stream written by arrow's StreamWriter in the host from
    // arrays that were already validated there (see the contract in wit/transform.wit).
    let decoder = unsafe { StreamDecoder::new().with_skip_validation(true) };
    sluice_contract::ipc::decode_batch_with(bytes, decoder)
}
