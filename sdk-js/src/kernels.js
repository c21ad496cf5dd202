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

// The input batch itself: row i is input row i (no array is built for it).
const INPUT = 'input';

/** The input rows `batch`'s rows come from (a Uint32Array), when known. */
export function rowsOf(batch) {
  const rows = lineage.get(batch);
  if (rows !== INPUT) return rows;
  const all = new Uint32Array(batch.numRows);
  for (let i = 0; i < all.length; i++) all[i] = i;
  return all;
}

/** Mark `batch` as the input: row i comes from input row i. */
export function markInput(batch) {
  lineage.set(batch, INPUT);
}

/**
 * The rows of `rows` (a Table or RecordBatch) whose `mask` entry is truthy, in order; the
 * batch itself when every row is kept.
 */
export function filterRows(rows, mask) {
  const batch = rows instanceof RecordBatch ? rows : oneBatch(rows);
  if (mask.length !== batch.numRows) {
    throw new RangeError(`the mask has ${mask.length} entries for ${batch.numRows} rows`);
  }
  const all = new Uint32Array(mask.length);
  let kept = 0;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) all[kept++] = i;
  }
  // Every row kept: the batch itself (and its lineage).
  return kept === mask.length ? batch : takeRows(batch, all.subarray(0, kept));
}

/** The rows of `rows` at `indices` (a Uint32Array or array of row numbers), in that order. */
export function takeRows(rows, indices) {
  const batch = rows instanceof RecordBatch ? rows : oneBatch(rows);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!(i >= 0 && i < batch.numRows)) {
      throw new RangeError(`row ${i} is out of range for ${batch.numRows} rows`);
    }
  }
  const children = batch.data.children.map((child) => takeData(child, indices));
  const data = makeData({ type: new Struct(batch.schema.fields), length: indices.length, nullCount: 0, children });
  const taken = new RecordBatch(batch.schema, data);
  const from = lineage.get(batch);
  if (from === INPUT) {
    lineage.set(taken, Uint32Array.from(indices));
  } else if (from) {
    const rows = new Uint32Array(indices.length);
    for (let k = 0; k < rows.length; k++) rows[k] = from[indices[k]];
    lineage.set(taken, rows);
  }
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

/**
 * Utf8 or binary rows at `indices` (32-bit offsets). Written for an interpreter (a component
 * runs JavaScript without a JIT): no call per row, and one copy per run of consecutive rows
 * (a copy through a view beats a byte loop even for a 10-byte string there).
 */
function takeVarSize(data, indices, nullCount, nullBitmap) {
  const n = indices.length;
  const from = data.valueOffsets; // a slice's offsets are sliced with it
  const src = data.values;
  const offsets = new Int32Array(n + 1);
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    const i = indices[k];
    bytes += from[i + 1] - from[i];
    offsets[k + 1] = bytes;
  }
  const values = new Uint8Array(bytes);
  let k = 0;
  while (k < n) {
    // A run of consecutive rows is one range of bytes.
    const first = indices[k];
    let count = 1;
    while (k + count < n && indices[k + count] === first + count) count++;
    values.set(src.subarray(from[first], from[first + count]), offsets[k]);
    k += count;
  }
  return makeData({ type: data.type, length: n, nullCount, nullBitmap, valueOffsets: offsets, data: values });
}

/** Calls `copy(k, first, count)` for each run of consecutive rows `first..first+count` found at `indices[k..]`. */
function forRuns(indices, copy) {
  const n = indices.length;
  let k = 0;
  while (k < n) {
    const first = indices[k];
    let count = 1;
    while (k + count < n && indices[k + count] === first + count) count++;
    copy(k, first, count);
    k += count;
  }
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
  if (DataType.isUtf8(type) || DataType.isBinary(type)) {
    return takeVarSize(data, indices, nullCount, nullBitmap);
  }
  if (DataType.isLargeUtf8(type) || DataType.isLargeBinary(type)) {
    // 64-bit offsets: BigInts, so the slow, general path.
    const from = data.valueOffsets;
    const parts = [];
    const offsets = new BigInt64Array(n + 1);
    let at = 0;
    for (let k = 0; k < n; k++) {
      const i = indices[k];
      const part = data.values.subarray(Number(from[i]), Number(from[i + 1]));
      parts.push(part);
      at += part.length;
      offsets[k + 1] = BigInt(at);
    }
    const values = new Uint8Array(at);
    let to = 0;
    for (const part of parts) {
      values.set(part, to);
      to += part.length;
    }
    return makeData({ type, length: n, nullCount, nullBitmap, valueOffsets: offsets, data: values });
  }
  const stride = data.stride;
  if (data.values && ArrayBuffer.isView(data.values) && stride >= 1 && data.children.length === 0) {
    const out = new data.values.constructor(n * stride);
    const src = data.values;
    if (stride === 1) {
      for (let k = 0; k < n; k++) out[k] = src[indices[k]]; // sliced with the slice
    } else {
      forRuns(indices, (k, first, count) => out.set(src.subarray(first * stride, (first + count) * stride), k * stride));
    }
    return makeData({ type, length: n, nullCount, nullBitmap, data: out });
  }
  throw new TypeError(`selecting rows of a ${type} column is not supported yet`);
}
