// Arrow IPC as the contract frames it (wit/types.wit): a stream with one schema message and
// either no batch (a schema) or exactly one batch.

import { RecordBatch, RecordBatchReader, RecordBatchStreamWriter, Table } from 'apache-arrow';

/** The schema of an IPC stream (its batches, if any, are not read). */
export function schemaFromIPC(bytes) {
  const reader = RecordBatchReader.from(bytes);
  reader.open();
  return reader.schema;
}

/** An IPC stream holding `schema` and no batch. */
export function schemaToIPC(schema) {
  const writer = new RecordBatchStreamWriter();
  writer.reset(undefined, schema);
  writer.finish();
  return writer.toUint8Array(true);
}

/** The batches of an IPC stream, as one table (the host sends one batch per call). */
export function tableFromIPC(bytes) {
  const batches = [];
  const reader = RecordBatchReader.from(bytes);
  reader.open();
  for (const batch of reader) {
    // A stream with no batch reads as one empty placeholder batch.
    if (batch.numRows > 0) batches.push(batch);
  }
  return batches.length === 0 ? new Table(reader.schema) : new Table(batches);
}

/**
 * An IPC stream holding the rows of `rows` (a Table or a RecordBatch) as exactly one batch,
 * under `schema` when given (the declared output schema; the rows' own otherwise).
 */
export function batchToIPC(rows, schema) {
  const batch = rows instanceof RecordBatch ? rows : oneBatch(rows);
  const writer = new RecordBatchStreamWriter();
  writer.reset(undefined, schema ?? batch.schema);
  writer.write(schema ? new RecordBatch(schema, batch.data) : batch);
  writer.finish();
  return writer.toUint8Array(true);
}

/** The rows of a table as one record batch. */
export function oneBatch(table) {
  if (table.batches.length === 1) {
    return table.batches[0];
  }
  if (table.batches.length === 0) {
    return new RecordBatch(table.schema);
  }
  return table.combineChunks().batches[0];
}
