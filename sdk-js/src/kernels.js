// Column kernels over Arrow's own buffers (typed arrays), since apache-arrow for JavaScript
// has no compute functions: selecting rows by index or by mask, and appending a column.
// A transform that loops over row objects instead is ten times slower.

import {
  Bool,
  DataType,
  Field,
  Float64,
  Int64,
  RecordBatch,
  Schema,
  Struct,
  Table,
  Utf8,
  makeData,
  makeVector,
  vectorFromArray,
} from 'apache-arrow';

import { oneBatch } from './ipc.js';

// Row lineage: for a batch built from the input batch by these kernels, which input row
// each of its rows comes from. The export sends it as the contract's `_sluice_row` column on
// outputs declared with lineage, so a dead letter names its own input record.
const lineage = new WeakMap();

/** The input rows `batch`'s rows come from (a Uint32Array), when known. */
export function rowsOf(batch) {
  return lineage.get(batch);
}

/** Mark `batch` as the input: row i comes from input row i. */
export function markInput(batch) {
  const rows = new Uint32Array(batch.numRows);
  for (let i = 0; i < rows.length; i++) rows[i] = i;
  lineage.set(batch, rows);
}

/** The rows of `rows` (a Table or RecordBatch) whose `mask` entry is truthy, in order. */
export function filterRows(rows, mask) {
  const batch = rows instanceof RecordBatch ? rows : oneBatch(rows);
  if (mask.length !== batch.numRows) {
    throw new RangeError(`the mask has ${mask.length} entries for ${batch.numRows} rows`);
  }
  let kept = 0;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) kept++;
  }
  const indices = new Uint32Array(kept);
  for (let i = 0, k = 0; i < mask.length; i++) {
    if (mask[i]) indices[k++] = i;
  }
  return takeRows(batch, indices);
}

/** The rows of `rows` at `indices` (a Uint32Array or array of row numbers), in that order. */
export function takeRows(rows, indices) {
  const batch = rows instanceof RecordBatch ? rows : oneBatch(rows);
  for (const i of indices) {
    if (i < 0 || i >= batch.numRows) {
      throw new RangeError(`row ${i} is out of range for ${batch.numRows} rows`);
    }
  }
  const children = batch.data.children.map((child) => takeData(child, indices));
  const data = makeData({ type: new Struct(batch.schema.fields), length: indices.length, nullCount: 0, children });
  const taken = new RecordBatch(batch.schema, data);
  const from = lineage.get(batch);
  if (from) lineage.set(taken, Uint32Array.from(indices, (i) => from[i]));
  return taken;
}

/**
 * `rows` with one more column, last: `values` is a Vector, a typed array (its Arrow type
 * follows: Float64Array is float64, Int32Array int32, BigInt64Array int64…) or an array
 * (strings, numbers, booleans; `null` for a missing value).
 */
export function withColumn(rows, name, values, { nullable = true } = {}) {
  const batch = rows instanceof RecordBatch ? rows : oneBatch(rows);
  const vector = ArrayBuffer.isView(values) ? makeVector(values) : Array.isArray(values) ? fromArray(values) : values;
  if (vector.length !== batch.numRows) {
    throw new RangeError(`column ${name} has ${vector.length} values for ${batch.numRows} rows`);
  }
  if (vector.data.length !== 1) {
    throw new TypeError(`column ${name} is in ${vector.data.length} chunks; build it in one piece`);
  }
  const column = vector.data[0];
  const fields = [...batch.schema.fields, new Field(name, column.type, nullable)];
  const schema = new Schema(fields, batch.schema.metadata);
  const data = makeData({
    type: new Struct(fields),
    length: batch.numRows,
    nullCount: 0,
    children: [...batch.data.children, column],
  });
  const widened = new RecordBatch(schema, data);
  const from = lineage.get(batch);
  if (from) lineage.set(widened, from);
  return widened;
}

/** A new table of one batch, for returning from a transform. */
export function table(batch) {
  return new Table([batch]);
}

/** A vector of plain values: strings are utf8 (not dictionary-encoded), numbers float64. */
function fromArray(values) {
  const first = values.find((v) => v != null);
  const type =
    typeof first === 'string'
      ? new Utf8()
      : typeof first === 'bigint'
        ? new Int64()
        : typeof first === 'boolean'
          ? new Bool()
          : typeof first === 'number'
            ? new Float64()
            : undefined;
  return type ? vectorFromArray(values, type) : vectorFromArray(values);
}

/** Whether row `i` of `data` is valid (not null). Data slices keep their offset for bitmaps. */
function valid(data, i) {
  if (!data.nullBitmap || data.nullCount === 0) return true;
  const bit = data.offset + i;
  return (data.nullBitmap[bit >> 3] & (1 << (bit & 7))) !== 0;
}

/** The validity bitmap of `data` at `indices`, and how many are null. */
function takeValidity(data, indices) {
  if (!data.nullBitmap || data.nullCount === 0) {
    return { nullBitmap: undefined, nullCount: 0 };
  }
  const bitmap = new Uint8Array((indices.length + 7) >> 3);
  let nulls = 0;
  for (let k = 0; k < indices.length; k++) {
    if (valid(data, indices[k])) {
      bitmap[k >> 3] |= 1 << (k & 7);
    } else {
      nulls++;
    }
  }
  return { nullBitmap: nulls === 0 ? undefined : bitmap, nullCount: nulls };
}

/** One column's values at `indices`. */
export function takeData(data, indices) {
  const type = data.type;
  const n = indices.length;
  const { nullBitmap, nullCount } = takeValidity(data, indices);
  if (DataType.isBool(type)) {
    const bits = new Uint8Array((n + 7) >> 3);
    for (let k = 0; k < n; k++) {
      const bit = data.offset + indices[k];
      if (data.values[bit >> 3] & (1 << (bit & 7))) bits[k >> 3] |= 1 << (k & 7);
    }
    return makeData({ type, length: n, nullCount, nullBitmap, data: bits });
  }
  if (DataType.isUtf8(type) || DataType.isBinary(type) || DataType.isLargeUtf8(type) || DataType.isLargeBinary(type)) {
    const big = DataType.isLargeUtf8(type) || DataType.isLargeBinary(type);
    const from = data.valueOffsets;
    let bytes = 0;
    // A slice's offsets are sliced with it (its bitmaps are not: see `valid`).
    for (let k = 0; k < n; k++) {
      const i = indices[k];
      bytes += Number(from[i + 1]) - Number(from[i]);
    }
    const values = new Uint8Array(bytes);
    const offsets = big ? new BigInt64Array(n + 1) : new Int32Array(n + 1);
    let at = 0;
    for (let k = 0; k < n; k++) {
      const i = indices[k];
      const start = Number(from[i]);
      const end = Number(from[i + 1]);
      values.set(data.values.subarray(start, end), at);
      at += end - start;
      offsets[k + 1] = big ? BigInt(at) : at;
    }
    return makeData({ type, length: n, nullCount, nullBitmap, valueOffsets: offsets, data: values });
  }
  const stride = data.stride;
  if (data.values && ArrayBuffer.isView(data.values) && stride >= 1 && data.children.length === 0) {
    const out = new data.values.constructor(n * stride);
    for (let k = 0; k < n; k++) {
      const i = indices[k] * stride; // sliced with the slice
      for (let s = 0; s < stride; s++) out[k * stride + s] = data.values[i + s];
    }
    return makeData({ type, length: n, nullCount, nullBitmap, data: out });
  }
  throw new TypeError(`selecting rows of a ${type} column is not supported yet`);
}
