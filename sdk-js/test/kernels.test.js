import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordBatchReader, tableFromArrays, vectorFromArray, Utf8, Float64, Int64 } from 'apache-arrow';

import { batchToIPC, filterRows, oneBatch, schemaFromIPC, schemaToIPC, tableFromIPC, takeRows, withColumn } from '../src/index.js';

function sample() {
  const t = tableFromArrays({
    id: vectorFromArray(['a', null, 'ccc', 'dd', ''], new Utf8()),
    temperature: vectorFromArray([20.5, 26.0, null, 30.25, 25.0], new Float64()),
    n: vectorFromArray([1n, 2n, 3n, null, 5n], new Int64()),
    ok: vectorFromArray([true, false, null, true, false]),
  });
  return oneBatch(t);
}

const rows = (batch) => batch.toArray().map((r) => r.toJSON());

test('filterRows keeps the masked rows of every column type, with their nulls', () => {
  const got = filterRows(sample(), [0, 1, 1, 0, 1]);
  assert.deepEqual(rows(got), [
    { id: null, temperature: 26.0, n: 2n, ok: false },
    { id: 'ccc', temperature: null, n: 3n, ok: null },
    { id: '', temperature: 25.0, n: 5n, ok: false },
  ]);
  assert.equal(got.getChild('temperature').nullCount, 1);
  assert.equal(filterRows(sample(), [0, 0, 0, 0, 0]).numRows, 0);
  assert.throws(() => filterRows(sample(), [1]), RangeError);
});

test('takeRows follows the given order and repeats rows', () => {
  const got = takeRows(sample(), Uint32Array.from([4, 0, 0]));
  assert.deepEqual(rows(got).map((r) => r.id), ['', 'a', 'a']);
  assert.throws(() => takeRows(sample(), [9]), RangeError);
});

test('a sliced batch is read from its own offset', () => {
  const sliced = sample().slice(2, 5);
  assert.deepEqual(rows(takeRows(sliced, [0, 2])).map((r) => r.id), ['ccc', '']);
});

test('withColumn appends a typed array or an array as the last column', () => {
  const b = sample();
  const hot = withColumn(b, 'hot', Float64Array.from([0, 1, 0, 1, 0]));
  assert.deepEqual(hot.schema.fields.map((f) => f.name), ['id', 'temperature', 'n', 'ok', 'hot']);
  assert.equal(String(hot.schema.fields[4].type), 'Float64');
  const label = withColumn(b, 'label', ['x', null, 'z', 'w', 'v'], { nullable: true });
  assert.deepEqual(rows(label).map((r) => r.label), ['x', null, 'z', 'w', 'v']);
  assert.throws(() => withColumn(b, 'short', [1, 2]), RangeError);
});

test('IPC: a schema is a stream with no batch, a batch one stream with one batch', () => {
  const b = sample();
  const schemaBytes = schemaToIPC(b.schema);
  assert.deepEqual(schemaFromIPC(schemaBytes).fields.map((f) => f.name), ['id', 'temperature', 'n', 'ok']);
  const reader = RecordBatchReader.from(schemaBytes);
  reader.open();
  assert.deepEqual([...reader].map((b) => b.numRows), [0], 'only the reader\'s placeholder: no batch');
  assert.deepEqual([...schemaBytes.slice(-8)], [255, 255, 255, 255, 0, 0, 0, 0], 'the schema, then the end of the stream');
  assert.equal(tableFromIPC(schemaBytes).numRows, 0);
  const back = tableFromIPC(batchToIPC(b));
  assert.equal(back.batches.length, 1);
  assert.deepEqual(rows(oneBatch(back)), rows(b));
});
