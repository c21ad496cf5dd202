import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tableFromArrays, vectorFromArray, Float64, Utf8 } from 'apache-arrow';

import { ConfigError, Transform, batchToIPC, exportTransform, filterRows, oneBatch, rejectedSchema, schemaFromIPC, schemaToIPC, tableFromIPC, withColumn } from '../src/index.js';

class Warm extends Transform {
  static describe(config, input) {
    if (typeof config.above !== 'number') throw new ConfigError(['above'], 'expected a number');
    if (!input.fields.some((f) => f.name === 'temperature')) throw new ConfigError([], 'no temperature column');
    return { main: input, rejected: rejectedSchema(input) };
  }
  open(config) {
    this.above = config.above;
  }
  process(batch) {
    const t = batch.getChild('temperature').data[0].values;
    const warm = Array.from(t, (v) => v > this.above);
    const cold = filterRows(batch, warm.map((w) => !w));
    return {
      main: filterRows(batch, warm),
      rejected: withColumn(cold, '_sluice_reason', Array(cold.numRows).fill('too cold'), { nullable: false }),
    };
  }
}

const input = oneBatch(
  tableFromArrays({
    id: vectorFromArray(['a', 'b', 'c'], new Utf8()),
    temperature: vectorFromArray([20, 30, 40], new Float64()),
  }),
);

test('the export runs describe, open and process through IPC bytes', () => {
  const t = exportTransform(Warm);
  const schema = schemaToIPC(input.schema);
  const d = t.describe('{"above": 25}', schema);
  assert.deepEqual(d.outputs.map((o) => o.name), ['main', 'rejected']);
  assert.equal(schemaFromIPC(d.outputs[1].schema).fields.at(-1).name, '_sluice_reason');
  assert.equal(d.stateFormat, undefined);
  t.open('{"above": 25}', schema);
  const out = t.process(batchToIPC(input));
  const byName = Object.fromEntries(out.map((o) => [o.output, oneBatch(tableFromIPC(o.batch))]));
  assert.deepEqual(byName.main.toArray().map((r) => r.id), ['b', 'c']);
  assert.deepEqual(byName.rejected.toArray().map((r) => r._sluice_reason), ['too cold']);
});

test('config errors carry their key path; bad JSON and failures map to the contract', () => {
  const t = exportTransform(Warm);
  const schema = schemaToIPC(input.schema);
  assert.throws(() => t.describe('{"above": "x"}', schema), (e) => e.path[0] === 'above' && /number/.test(e.message));
  assert.throws(() => t.describe('{not json', schema), (e) => e.path.length === 0 && /JSON/.test(e.message));
  t.open('{"above": 25}', schema);
  assert.throws(() => t.process(new Uint8Array([1, 2, 3])), (e) => e.tag === 'invalid-input');
});

class Traced extends Warm {
  static describe(config, input) {
    return { ...Warm.describe(config, input), lineage: ['main', 'rejected'] };
  }
}

test('outputs declared with lineage carry the input row of each row built by the kernels', () => {
  const t = exportTransform(Traced);
  const schema = schemaToIPC(input.schema);
  const d = t.describe('{"above": 25}', schema);
  const names = (ipc) => schemaFromIPC(ipc).fields.map((f) => f.name);
  assert.deepEqual(names(d.outputs[0].schema), ['id', 'temperature', '_sluice_row']);
  assert.deepEqual(names(d.outputs[1].schema), ['id', 'temperature', '_sluice_row', '_sluice_reason']);
  t.open('{"above": 25}', schema);
  const out = Object.fromEntries(t.process(batchToIPC(input)).map((o) => [o.output, oneBatch(tableFromIPC(o.batch))]));
  assert.deepEqual(Array.from(out.main.getChild('_sluice_row').toArray()), [1, 2]);
  assert.deepEqual(Array.from(out.rejected.getChild('_sluice_row').toArray()), [0]);
});
