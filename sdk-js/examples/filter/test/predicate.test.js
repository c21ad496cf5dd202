import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arrow, oneBatch } from 'sluice-sdk';

const { Float64, Int64, Utf8, tableFromArrays, vectorFromArray } = arrow;

import { PredicateError, compile } from '../src/predicate.js';

const batch = oneBatch(
  tableFromArrays({
    id: vectorFromArray(['rasp-1', 'rasp-2', "o'neil", null], new Utf8()),
    t: vectorFromArray([20, 30, null, 40], new Float64()),
    n: vectorFromArray([1n, 2n, 3n, null], new Int64()),
  }),
);

const kept = (text) => Array.from(compile(text, batch.schema)(batch));

test('comparisons, strings and three-valued logic', () => {
  assert.deepEqual(kept('t > 25'), [0, 1, 0, 1]);
  assert.deepEqual(kept('not (t > 25)'), [1, 0, 0, 0], 'unknown stays unknown under not');
  assert.deepEqual(kept('t > 25 or id starts_with \'rasp\''), [1, 1, 0, 1]);
  assert.deepEqual(kept("id = 'o''neil'"), [0, 0, 1, 0]);
  assert.deepEqual(kept('id contains "sp-" and n >= 2'), [0, 1, 0, 0]);
  assert.deepEqual(kept('t is null or n is null'), [0, 0, 1, 1]);
  assert.deepEqual(kept("id < 'rasp-2'"), [1, 0, 1, 0]);
});

test('mistakes are refused with what was expected', () => {
  assert.throws(() => kept('tt > 1'), (e) => e instanceof PredicateError && /no column `tt`/.test(e.message));
  assert.throws(() => kept("t > 'x'"), /cannot be compared/);
  assert.throws(() => kept('t >'), /cannot be compared with nothing/);
  assert.throws(() => kept('(t > 1'), /expected `\)`/);
  assert.throws(() => kept("id = 'open"), /not closed/);
});
