// `filter` in JavaScript: keep the rows of each batch for which the predicate is true.
//
//   [transform.config]
//   predicate = "temperature > 25 and (device_id starts_with 'rasp' or humidity is null)"
//
// Same config and output as the stock Rust `filter` for the predicates `predicate.js` knows.

import { ConfigError, InvalidInput, Transform, exportTransform, filterRows } from 'sluice-sdk';

import { PredicateError, compile } from './predicate.js';

function predicateOf(config, input) {
  const unknown = Object.keys(config).filter((k) => k !== 'predicate');
  if (unknown.length > 0) {
    throw new ConfigError([unknown[0]], `unknown key \`${unknown[0]}\`; the filter takes \`predicate\``);
  }
  if (typeof config.predicate !== 'string') {
    throw new ConfigError(['predicate'], 'expected a predicate such as "temperature > 25"');
  }
  try {
    return compile(config.predicate, input);
  } catch (e) {
    if (e instanceof PredicateError) throw new ConfigError(['predicate'], e.message);
    throw e;
  }
}

class Filter extends Transform {
  static describe(config, input) {
    predicateOf(config, input);
    // As the stock filter: kept rows name their input row, for later stages' dead letters.
    return { main: input, lineage: ['main'] };
  }

  open(config, input) {
    this.keep = predicateOf(config, input);
    this.columns = input.fields.length;
  }

  process(batch) {
    if (batch.numCols !== this.columns) throw new InvalidInput('the batch does not have the schema given at open');
    return filterRows(batch, this.keep(batch));
  }
}

export const transform = exportTransform(Filter);
