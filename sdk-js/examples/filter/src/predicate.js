// The core of the stock filter's predicate language, parsed, type-checked against the input
// schema and evaluated over whole columns (typed arrays), with SQL's three-valued logic: a
// comparison with a null is unknown, and a row whose predicate is unknown is dropped.
//
//   predicate := or
//   or        := and ("or" and)*
//   and       := not ("and" not)*
//   not       := "not" not | "(" predicate ")" | test
//   test      := column ("is" ["not"] "null" | op literal | "contains" string | "starts_with" string)
//   op        := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//   literal   := number | string ('…' or "…", the quote doubled for itself) | true | false

import { arrow } from 'sluice-sdk';

const { DataType } = arrow;

const TRUE = 1;
const FALSE = 0;
const UNKNOWN = -1;

/** A predicate the filter cannot use: the message says why. */
export class PredicateError extends Error {}

function tokenize(text) {
  const tokens = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c, at: i });
      i++;
    } else if (c === "'" || c === '"') {
      let value = '';
      let j = i + 1;
      for (;;) {
        if (j >= text.length) throw new PredicateError(`the string at ${i + 1} is not closed`);
        if (text[j] === c) {
          if (text[j + 1] === c) {
            value += c;
            j += 2;
            continue;
          }
          break;
        }
        value += text[j++];
      }
      tokens.push({ kind: 'string', value, at: i });
      i = j + 1;
    } else if (/[<>=!]/.test(c)) {
      const two = text.slice(i, i + 2);
      const op = ['<=', '>=', '!=', '<>', '=='].includes(two) ? two : c;
      if (op === '!') throw new PredicateError(`unexpected \`!\` at ${i + 1}`);
      tokens.push({ kind: 'op', value: op === '==' ? '=' : op === '<>' ? '!=' : op, at: i });
      i += op.length;
    } else if (/[0-9.-]/.test(c)) {
      const m = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) throw new PredicateError(`expected a number at ${i + 1}`);
      tokens.push({ kind: 'number', value: m[0], at: i });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
      tokens.push({ kind: 'word', value: m[0], at: i });
      i += m[0].length;
    } else {
      throw new PredicateError(`unexpected \`${c}\` at ${i + 1}`);
    }
  }
  return tokens;
}

/** Parse and type-check `text` against `schema`; the result evaluates batches. */
export function compile(text, schema) {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos];
  const word = (w) => peek()?.kind === 'word' && peek().value.toLowerCase() === w;
  const where = () => (peek() ? `at ${peek().at + 1}` : 'at the end');

  const or = () => {
    let left = and();
    while (word('or')) {
      pos++;
      left = { op: 'or', left, right: and() };
    }
    return left;
  };
  const and = () => {
    let left = not();
    while (word('and')) {
      pos++;
      left = { op: 'and', left, right: not() };
    }
    return left;
  };
  const not = () => {
    if (word('not')) {
      pos++;
      return { op: 'not', inner: not() };
    }
    if (peek()?.kind === '(') {
      pos++;
      const inner = or();
      if (peek()?.kind !== ')') throw new PredicateError(`expected \`)\` ${where()}`);
      pos++;
      return inner;
    }
    return test();
  };
  const test = () => {
    const t = peek();
    if (t?.kind !== 'word') throw new PredicateError(`expected a column name ${where()}`);
    pos++;
    const field = schema.fields.find((f) => f.name === t.value);
    if (!field) {
      const names = schema.fields.map((f) => f.name).join(', ');
      throw new PredicateError(`no column \`${t.value}\` in the input (it has ${names})`);
    }
    const kind = columnKind(field.type);
    if (word('is')) {
      pos++;
      const negate = word('not');
      if (negate) pos++;
      if (!word('null')) throw new PredicateError(`expected \`null\` ${where()}`);
      pos++;
      return { op: negate ? 'notnull' : 'null', column: field.name };
    }
    if (word('contains') || word('starts_with')) {
      const op = peek().value.toLowerCase();
      pos++;
      const lit = peek();
      if (lit?.kind !== 'string') throw new PredicateError(`expected a string after ${op} ${where()}`);
      if (kind !== 'string') throw new PredicateError(`${op} needs a string column; \`${field.name}\` is ${field.type}`);
      pos++;
      return { op, column: field.name, value: utf8(lit.value) };
    }
    const op = peek();
    if (op?.kind !== 'op') throw new PredicateError(`expected a comparison after \`${field.name}\` ${where()}`);
    pos++;
    const lit = peek();
    pos++;
    let value;
    if (lit?.kind === 'number' && kind === 'number') {
      value = Number(lit.value);
    } else if (lit?.kind === 'number' && kind === 'bigint') {
      value = Number(lit.value);
    } else if (lit?.kind === 'string' && kind === 'string') {
      value = utf8(lit.value);
    } else if (lit?.kind === 'word' && ['true', 'false'].includes(lit.value.toLowerCase()) && kind === 'bool') {
      value = lit.value.toLowerCase() === 'true';
    } else {
      const found = lit ? (lit.kind === 'word' ? `\`${lit.value}\`` : `a ${lit.kind}`) : 'nothing';
      throw new PredicateError(`\`${field.name}\` is ${field.type} and cannot be compared with ${found}`);
    }
    return { op: 'cmp', cmp: op.value, column: field.name, kind, value };
  };

  const tree = or();
  if (pos < tokens.length) throw new PredicateError(`unexpected \`${tokens[pos].value ?? tokens[pos].kind}\` ${where()}`);
  return (batch) => keep(evaluate(tree, batch));
}

function columnKind(type) {
  if (DataType.isUtf8(type) || DataType.isLargeUtf8(type)) return 'string';
  if (DataType.isBool(type)) return 'bool';
  if (DataType.isFloat(type)) return 'number';
  if (DataType.isInt(type)) return type.bitWidth === 64 ? 'bigint' : 'number';
  throw new PredicateError(`columns of type ${type} cannot be filtered on`);
}

const encoder = new TextEncoder();
function utf8(s) {
  return encoder.encode(s);
}

/** Rows whose result is true. */
function keep(result) {
  const mask = new Uint8Array(result.length);
  for (let i = 0; i < result.length; i++) mask[i] = result[i] === TRUE ? 1 : 0;
  return mask;
}

function validAt(data, i) {
  if (!data.nullBitmap || data.nullCount === 0) return true;
  const bit = data.offset + i;
  return (data.nullBitmap[bit >> 3] & (1 << (bit & 7))) !== 0;
}

function column(batch, name) {
  const vector = batch.getChild(name);
  if (vector.data.length !== 1) throw new Error(`column ${name} is in ${vector.data.length} chunks`);
  return vector.data[0];
}

function evaluate(node, batch) {
  const n = batch.numRows;
  const out = new Int8Array(n);
  switch (node.op) {
    case 'and':
    case 'or': {
      const a = evaluate(node.left, batch);
      const b = evaluate(node.right, batch);
      const dominant = node.op === 'and' ? FALSE : TRUE;
      for (let i = 0; i < n; i++) {
        out[i] = a[i] === dominant || b[i] === dominant ? dominant : a[i] === UNKNOWN || b[i] === UNKNOWN ? UNKNOWN : a[i];
      }
      return out;
    }
    case 'not': {
      const a = evaluate(node.inner, batch);
      for (let i = 0; i < n; i++) out[i] = a[i] === UNKNOWN ? UNKNOWN : 1 - a[i];
      return out;
    }
    case 'null':
    case 'notnull': {
      const data = column(batch, node.column);
      for (let i = 0; i < n; i++) out[i] = validAt(data, i) === (node.op === 'notnull') ? TRUE : FALSE;
      return out;
    }
    default: {
      const data = column(batch, node.column);
      if (node.op === 'cmp' && node.kind === 'number') {
        compareNumbers(data.values, node.cmp, node.value, out);
      } else {
        const test = tester(node, data);
        for (let i = 0; i < n; i++) out[i] = test(i) ? TRUE : FALSE;
      }
      if (data.nullCount > 0) {
        for (let i = 0; i < n; i++) if (!validAt(data, i)) out[i] = UNKNOWN;
      }
      return out;
    }
  }
}

/**
 * `out[i]` = whether `values[i] op literal`, one loop per operator: no call per row (the
 * component runs JavaScript in an interpreter, where a call costs far more than a compare).
 * NaN compares false, and unequal, as in IEEE arithmetic.
 */
function compareNumbers(values, op, literal, out) {
  const n = out.length;
  switch (op) {
    case '=':
      for (let i = 0; i < n; i++) out[i] = values[i] === literal ? TRUE : FALSE;
      break;
    case '!=':
      for (let i = 0; i < n; i++) out[i] = values[i] !== literal && values[i] === values[i] ? TRUE : FALSE;
      break;
    case '<':
      for (let i = 0; i < n; i++) out[i] = values[i] < literal ? TRUE : FALSE;
      break;
    case '<=':
      for (let i = 0; i < n; i++) out[i] = values[i] <= literal ? TRUE : FALSE;
      break;
    case '>':
      for (let i = 0; i < n; i++) out[i] = values[i] > literal ? TRUE : FALSE;
      break;
    default:
      for (let i = 0; i < n; i++) out[i] = values[i] >= literal ? TRUE : FALSE;
  }
}

/** Row `i` → whether the (non-null) value passes `node`'s test. */
function tester(node, data) {
  if (node.op === 'contains' || node.op === 'starts_with') {
    const { valueOffsets: offsets, values } = data;
    const needle = node.value;
    return (i) => {
      const start = Number(offsets[i]);
      const end = Number(offsets[i + 1]);
      if (node.op === 'starts_with') return end - start >= needle.length && bytesEqual(values, start, needle);
      for (let at = start; at + needle.length <= end; at++) {
        if (bytesEqual(values, at, needle)) return true;
      }
      return false;
    };
  }
  const cmp = compare(node.cmp);
  if (node.kind === 'string') {
    const { valueOffsets: offsets, values } = data;
    return (i) => cmp(bytesCompare(values, Number(offsets[i]), Number(offsets[i + 1]), node.value));
  }
  if (node.kind === 'bool') {
    return (i) => {
      const bit = data.offset + i;
      const v = (data.values[bit >> 3] & (1 << (bit & 7))) !== 0;
      return cmp(v === node.value ? 0 : v ? 1 : -1);
    };
  }
  const values = data.values;
  const literal = node.value;
  if (node.kind === 'bigint') return (i) => cmp(Math.sign(Number(values[i]) - literal));
  return (i) => {
    const v = values[i];
    return cmp(v < literal ? -1 : v > literal ? 1 : v === literal ? 0 : NaN);
  };
}

function compare(op) {
  switch (op) {
    case '=':
      return (c) => c === 0;
    case '!=':
      return (c) => c !== 0 && !Number.isNaN(c);
    case '<':
      return (c) => c < 0;
    case '<=':
      return (c) => c <= 0;
    case '>':
      return (c) => c > 0;
    default:
      return (c) => c >= 0;
  }
}

function bytesEqual(values, at, needle) {
  for (let k = 0; k < needle.length; k++) if (values[at + k] !== needle[k]) return false;
  return true;
}

function bytesCompare(values, start, end, literal) {
  const len = end - start;
  const common = Math.min(len, literal.length);
  for (let k = 0; k < common; k++) {
    const d = values[start + k] - literal[k];
    if (d !== 0) return d;
  }
  return len - literal.length;
}
