//! The guest's side of the IPC framing: the contract's helpers, and trust in the host's batches.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::error::ArrowError;
use arrow::ipc::convert::try_fb_to_schema;
use arrow::ipc::reader::FileDecoder;
use arrow::ipc::{Block, MessageHeader, root_as_message};
pub(crate) use sluice_contract::ipc::{decode_schema, encode_batch, encode_schema};

/// The marker before each message's length in an IPC stream.
const CONTINUATION: [u8; 4] = [0xff; 4];

/// Decode a batch the Sluice host sent to this transform: an IPC stream of a schema, maybe
/// dictionaries, one batch and the end marker. The host only sends batches it decoded
/// natively or validated on their way out of the previous transform, so the messages are
/// parsed (flatbuffers verified, buffers in bounds) but array contents (the offsets and UTF-8
/// of every string) are not validated again inside the sandbox.
///
/// Each message is read with arrow's `FileDecoder`, which honours skipping validation for
/// every array; the stream decoder of arrow 60 validates a batch's arrays regardless.
pub(crate) fn decode_batch_from_host(bytes: Vec<u8>) -> Result<RecordBatch, ArrowError> {
    let buffer = Buffer::from_vec(bytes);
    let error = |what: &str| ArrowError::IpcError(format!("batch from the host: {what}"));
    let mut decoder: Option<FileDecoder> = None;
    let mut batch = None;
    let mut at = 0;
    while at < buffer.len() {
        let rest = &buffer[at..];
        if rest.len() < 8 || rest[..4] != CONTINUATION {
            return Err(error("a message without its marker"));
        }
        let length = i32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let length = usize::try_from(length).map_err(|_| error("a negative message length"))?;
        if length == 0 {
            break; // the end of the stream
        }
        let header = rest.get(8..8 + length).ok_or_else(|| error("a truncated message"))?;
        let message = root_as_message(header).map_err(|e| error(&e.to_string()))?;
        let body = usize::try_from(message.bodyLength()).map_err(|_| error("a negative body length"))?;
        let size = 8 + length + body;
        if rest.len() < size {
            return Err(error("a truncated message body"));
        }
        let block = Block::new(0, (8 + length) as i32, body as i64);
        let bytes = buffer.slice_with_length(at, size);
        match message.header_type() {
            MessageHeader::Schema => {
                let schema = message
                    .header_as_schema()
                    .ok_or_else(|| error("an unreadable schema"))?;
                let schema = Arc::new(try_fb_to_schema(schema)?);
                // SAFETY: the arrays were validated in the host (see the contract in
                // wit/transform.wit); only the framing is untrusted here, and it is checked.
                decoder = Some(unsafe { FileDecoder::new(schema, message.version()).with_skip_validation(true) });
            }
            MessageHeader::DictionaryBatch => decoder
                .as_mut()
                .ok_or_else(|| error("a dictionary before the schema"))?
                .read_dictionary(&block, &bytes)?,
            MessageHeader::RecordBatch => {
                let decoder = decoder.as_ref().ok_or_else(|| error("a batch before the schema"))?;
                if batch.is_some() {
                    return Err(error("more than one record batch"));
                }
                batch = decoder.read_record_batch(&block, &bytes)?;
            }
            other => return Err(error(&format!("an unexpected {other:?} message"))),
        }
        at += size;
    }
    batch.ok_or_else(|| error("no record batch"))
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, StringArray};
    use arrow::datatypes::Int32Type;

    use super::*;

    fn batch() -> RecordBatch {
        let strings: ArrayRef = Arc::new(StringArray::from(vec![Some("é a"), None, Some(""), Some("ticker")]));
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.5), Some(-0.0), None, Some(f64::MAX)]));
        let dictionary: ArrayRef = Arc::new(
            vec![Some("x"), Some("y"), None, Some("x")]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3, 4]));
        RecordBatch::try_from_iter([("s", strings), ("f", floats), ("d", dictionary), ("i", ints)]).expect("batch")
    }

    #[test]
    fn the_hosts_stream_reads_back_as_the_batch_it_holds() {
        let batch = batch();
        let bytes = encode_batch(&batch).expect("encode");
        assert_eq!(decode_batch_from_host(bytes).expect("decode"), batch);
        // A slice: its offsets do not start at zero.
        let slice = batch.slice(1, 3);
        let bytes = encode_batch(&slice).expect("encode");
        assert_eq!(decode_batch_from_host(bytes).expect("decode"), slice);
    }

    #[test]
    fn framing_that_is_not_one_batch_is_an_error() {
        let bytes = encode_batch(&batch()).expect("encode");
        let schema_only = encode_schema(&batch().schema()).expect("schema");
        let mut two = bytes[..bytes.len() - 8].to_vec();
        let batch_message = &bytes[schema_only.len() - 8..bytes.len() - 8];
        two.extend_from_slice(batch_message);
        for (bytes, what) in [
            (schema_only.clone(), "no record batch"),
            (bytes[..bytes.len() / 2].to_vec(), "truncated"),
            (bytes[4..].to_vec(), "marker"),
            (two, "more than one"),
            (Vec::new(), "no record batch"),
        ] {
            let error = decode_batch_from_host(bytes).expect_err(what).to_string();
            assert!(error.contains(what), "{what}: {error}");
        }
    }
}
