// sluice-sdk for JavaScript: write a Sluice transform as one class over Arrow record batches,
// as the Rust `sluice-sdk` does, and export it as the `sluice:transform` WIT world.
//
//   import { Transform, ConfigError, exportTransform, filterRows } from 'sluice-sdk';
//
//   class KeepWarm extends Transform {
//     static describe(config, input) {            // type-check; return the outputs
//       if (typeof config.above !== 'number') throw new ConfigError(['above'], 'expected a number');
//       return { main: input };
//     }
//     open(config, input) { this.above = config.above; }
//     process(batch) {                             // a RecordBatch in, rows out
//       const t = batch.getChild('temperature').data[0].values;
//       return filterRows(batch, t.map((v) => v > this.above));
//     }
//   }
//   export const transform = exportTransform(KeepWarm);
//
// Batches cross the boundary, never records: `process` gets a whole RecordBatch and the
// kernels in `kernels.js` work on its typed arrays.

import { Field, RecordBatch, Schema, Struct, Uint32, Utf8, makeData } from 'apache-arrow';

import { batchToIPC, oneBatch, schemaFromIPC, schemaToIPC, tableFromIPC } from './ipc.js';
import { markInput, rowsOf } from './kernels.js';

export { batchToIPC, oneBatch, schemaFromIPC, schemaToIPC, tableFromIPC } from './ipc.js';
// Arrow itself, so a transform and the SDK share one copy (two copies of apache-arrow in a
// bundle do not recognise each other's classes).
export * as arrow from 'apache-arrow';
export { filterRows, rowsOf, takeData, takeRows, withColumn } from './kernels.js';

/** The output that continues down the pipeline. */
export const MAIN = 'main';
/** The output of refused rows; its schema ends with a non-null utf8 `_sluice_reason`. */
export const REJECTED = 'rejected';
/** The column holding why a rejected row was refused. */
export const REASON_COLUMN = '_sluice_reason';
/** The contract's lineage column: the input row an output row comes from. */
export const ROW_COLUMN = '_sluice_row';

/** A problem with the transform's `config` table: where (key path) and what. */
export class ConfigError extends Error {
  /** `path`: keys from the config table's root, e.g. `['columns', '3', 'cast']`. */
  constructor(path, message) {
    super(message);
    this.path = path.map(String);
  }
}

/** A batch the transform could not process: the pipeline's `on_error` policy applies. */
export class ProcessError extends Error {}

/** A batch that does not match the schema given at `open`. */
export class InvalidInput extends ProcessError {}

/**
 * The base of a transform. Override `static describe`, `open` and `process`; the others
 * have defaults for a stateless transform.
 */
export class Transform {
  /**
   * Type-check `config` (the parsed `[transform.config]` table) against `input` (an Arrow
   * Schema) and declare the outputs: `{ main: Schema, rejected?: Schema, ... }`, and
   * `stateFormat` (a number) for a stateful transform. Throw a ConfigError when it is wrong.
   * `lineage: ['main', 'rejected']` makes rows of those outputs name the input row they come
   * from, for rows built from the input batch with `filterRows`, `takeRows` and
   * `withColumn` (others name none), so their dead letters name their own input record.
   */
  static describe(_config, input) {
    return { main: input };
  }

  /** Prepare for batches of `input` with `config` (already accepted by `describe`). */
  open(_config, _input) {}

  /**
   * One batch (a RecordBatch) in; return its rows for `main` (a RecordBatch or Table), an
   * object of outputs `{ main: …, rejected: … }`, an array of `[output, rows]` pairs, or
   * nothing.
   */
  process(batch) {
    return batch;
  }

  /** Event time reached `watermarkMicros` (a BigInt): emit what it completes. */
  advanceWatermark(_watermarkMicros) {
    return [];
  }

  /** The input ended: emit what is still held. */
  finish() {
    return [];
  }

  /** The state to keep with a checkpoint (a Uint8Array), or undefined when stateless. */
  snapshot() {
    return undefined;
  }

  /** Take back a state `snapshot` wrote, in format `version`. */
  restore(_data, version) {
    throw new ProcessError(`this transform keeps no state (format ${version})`);
  }
}

/** A rejected output's schema: `input`'s columns and the reason last. */
export function rejectedSchema(input) {
  return new Schema([...input.fields, new Field(REASON_COLUMN, new Utf8(), false)]);
}

/**
 * The `transform` export of the WIT world for `TransformClass`: parses config and IPC,
 * checks outputs against what `describe` declared, and turns errors into the contract's.
 */
export function exportTransform(TransformClass) {
  let instance = null;
  let declared = null;
  let traced = null;
  let inputSchema = null;

  const parse = (configText) => {
    try {
      return configText.trim() === '' ? {} : JSON.parse(configText);
    } catch (e) {
      throw configError(new ConfigError([], `the config is not JSON: ${e.message}`));
    }
  };

  const describe = (config, input) => {
    let outputs;
    try {
      outputs = TransformClass.describe(config, input);
    } catch (e) {
      throw configError(e);
    }
    const { stateFormat, lineage = [], ...named } = outputs ?? {};
    if (!(named.main instanceof Schema)) {
      throw configError(new ConfigError([], 'describe must declare a `main` output schema'));
    }
    const traced = new Set(lineage.filter((n) => n in named));
    return { named, stateFormat, traced };
  };

  /** `schema` as the host receives it: with the lineage column when `name` is traced. */
  const wire = (name, schema, traced) => {
    if (!traced.has(name)) return schema;
    const fields = [...schema.fields];
    fields.splice(rowColumnAt(name, fields.length), 0, new Field(ROW_COLUMN, new Uint32(), true));
    return new Schema(fields, schema.metadata);
  };

  const emit = (result) => {
    const pairs = [];
    if (result == null) return pairs;
    if (Array.isArray(result)) {
      for (const [output, rows] of result) pairs.push([output, rows]);
    } else if (result.schema !== undefined && result.numRows !== undefined) {
      pairs.push([MAIN, result]);
    } else {
      for (const [output, rows] of Object.entries(result)) pairs.push([output, rows]);
    }
    const out = [];
    for (const [output, rows] of pairs) {
      if (rows == null) continue;
      const schema = declared?.[output];
      if (!schema) {
        throw new ProcessError(`emitted to output \`${output}\`, which describe did not declare`);
      }
      const batch = rows instanceof RecordBatch ? rows : oneBatch(rows);
      if (batch.numRows === 0) continue;
      if (!sameFields(batch.schema, schema)) {
        throw new ProcessError(`rows for \`${output}\` do not have the declared schema`);
      }
      out.push({ output, batch: batchToIPC(traced?.has(output) ? withLineage(output, batch) : batch, wire(output, schema, traced ?? new Set())) });
    }
    return out;
  };

  const guard = (call) => {
    try {
      return call();
    } catch (e) {
      throw processError(e);
    }
  };

  return {
    describe(configText, inputIpc) {
      const config = parse(configText);
      const input = schemaFromIPC(inputIpc);
      const { named, stateFormat, traced: lineage } = describe(config, input);
      const outputs = [[MAIN, named.main], ...Object.entries(named).filter(([n]) => n !== MAIN)];
      return {
        outputs: outputs.map(([name, schema]) => ({ name, schema: schemaToIPC(wire(name, schema, lineage)) })),
        stateFormat: stateFormat ?? undefined,
      };
    },
    open(configText, inputIpc) {
      const config = parse(configText);
      const input = schemaFromIPC(inputIpc);
      ({ named: declared, traced } = describe(config, input));
      inputSchema = input;
      instance = new TransformClass();
      try {
        instance.open(config, input);
      } catch (e) {
        throw configError(e);
      }
    },
    process(batchIpc) {
      let table;
      try {
        table = tableFromIPC(batchIpc);
      } catch (e) {
        throw { tag: 'invalid-input', val: String(e?.message ?? e) };
      }
      if (!sameFields(table.schema, inputSchema)) {
        throw { tag: 'invalid-input', val: 'the batch does not have the schema given at open' };
      }
      const batch = oneBatch(table);
      markInput(batch);
      return guard(() => emit(instance.process(batch)));
    },
    advanceWatermark(micros) {
      return guard(() => emit(instance.advanceWatermark(micros)));
    },
    finish() {
      return guard(() => emit(instance.finish()));
    },
    snapshot() {
      try {
        const data = instance.snapshot();
        if (data === undefined) return undefined;
        return { formatVersion: instance.constructor.stateFormat ?? 1, data };
      } catch (e) {
        throw String(e?.message ?? e);
      }
    },
    restore(state) {
      try {
        instance.restore(state.data, state.formatVersion);
      } catch (e) {
        throw { tag: 'corrupt', val: String(e?.message ?? e) };
      }
    },
  };
}

/** Where the lineage column goes: last, or in `rejected` just before the reason. */
function rowColumnAt(name, count) {
  return name === REJECTED ? count - 1 : count;
}

/** `batch` with the lineage column at its place: input rows, or nulls when not known. */
function withLineage(name, batch) {
  const rows = rowsOf(batch);
  const n = batch.numRows;
  const nullBitmap = rows ? undefined : new Uint8Array((n + 7) >> 3);
  const column = makeData({ type: new Uint32(), length: n, nullCount: rows ? 0 : n, nullBitmap, data: rows ?? new Uint32Array(n) });
  const fields = [...batch.schema.fields];
  const children = [...batch.data.children];
  const at = rowColumnAt(name, fields.length);
  fields.splice(at, 0, new Field(ROW_COLUMN, new Uint32(), true));
  children.splice(at, 0, column);
  const schema = new Schema(fields, batch.schema.metadata);
  return new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, nullCount: 0, children }));
}

function sameFields(a, b) {
  if (a.fields.length !== b.fields.length) return false;
  return a.fields.every((f, i) => f.name === b.fields[i].name && String(f.type) === String(b.fields[i].type));
}

function configError(e) {
  if (e instanceof ConfigError) {
    return { path: e.path, message: e.message };
  }
  return { path: [], message: String(e?.message ?? e) };
}

function processError(e) {
  if (e instanceof InvalidInput) {
    return { tag: 'invalid-input', val: e.message };
  }
  return { tag: 'failed', val: String(e?.message ?? e) };
}
