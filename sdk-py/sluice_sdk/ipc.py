"""Arrow IPC streams in pure Python, as the contract frames them (wit/types.wit): one schema
message, then no batch (a schema) or exactly one record batch.

Covers the types a transform meets in practice: signed and unsigned integers, floats,
booleans, UTF-8 strings, timestamps and dates. pyarrow and nanoarrow are native code and do
not run inside a component; this module needs only the pure-Python ``flatbuffers`` runtime.
Columns are Python lists, ``None`` for a null.
"""

import struct
from dataclasses import dataclass, field
from typing import List, Optional

import flatbuffers
from flatbuffers import number_types as N
from flatbuffers.table import Table

# Message header and type unions (format/Message.fbs, format/Schema.fbs).
_SCHEMA, _RECORD_BATCH = 1, 3
_T_INT, _T_FLOAT, _T_UTF8, _T_BOOL, _T_DATE, _T_TIMESTAMP = 2, 3, 5, 6, 8, 10
_V5 = 4
_CONTINUATION = 0xFFFFFFFF


@dataclass(frozen=True)
class Int:
    bits: int
    signed: bool = True


@dataclass(frozen=True)
class Float:
    bits: int  # 32 or 64


@dataclass(frozen=True)
class Bool:
    pass


@dataclass(frozen=True)
class Utf8:
    pass


@dataclass(frozen=True)
class Timestamp:
    unit: int  # 0 s, 1 ms, 2 µs, 3 ns
    tz: Optional[str] = None


@dataclass(frozen=True)
class Date:
    unit: int  # 0 days (date32), 1 ms (date64)


@dataclass(frozen=True)
class Field:
    name: str
    type: object
    nullable: bool = True


@dataclass
class Schema:
    fields: List[Field]

    def index(self, name):
        for i, f in enumerate(self.fields):
            if f.name == name:
                return i
        return None


# `Batch.rows` of the input batch itself: row i is input row i.
INPUT = "input"


@dataclass
class Batch:
    schema: Schema
    columns: List[list] = field(default_factory=list)
    # Row lineage: the input row each row comes from (a list), INPUT for the input batch
    # itself, or None when not known (see ``export``'s ``lineage``).
    rows: Optional[object] = None

    @property
    def num_rows(self):
        return len(self.columns[0]) if self.columns else 0

    def column(self, name):
        i = self.schema.index(name)
        if i is None:
            raise KeyError(name)
        return self.columns[i]

    def take(self, rows):
        """The rows at ``rows`` (indices), in that order."""
        rows = list(rows)
        if self.rows is None:
            lineage = None
        elif self.rows == INPUT:
            lineage = rows
        else:
            lineage = [self.rows[i] for i in rows]
        return Batch(self.schema, [[c[i] for i in rows] for c in self.columns], lineage)

    def filter(self, mask):
        """The rows whose ``mask`` entry is true."""
        return self.take([i for i, keep in enumerate(mask) if keep])

    def with_column(self, f, values):
        """This batch with ``values`` as one more column, last."""
        return Batch(Schema(self.schema.fields + [f]), self.columns + [list(values)], self.rows)


class IpcError(ValueError):
    """Bytes that are not an Arrow IPC stream this module reads."""


# --- reading -------------------------------------------------------------------------------


def _messages(data):
    """(flatbuffer Message table, body bytes) for each message of a stream."""
    data = memoryview(bytes(data))
    at = 0
    while at + 8 <= len(data):
        (cont,) = struct.unpack_from("<I", data, at)
        if cont == _CONTINUATION:
            (size,) = struct.unpack_from("<i", data, at + 4)
            at += 8
        else:  # the pre-1.0 framing: the length alone
            size = cont
            at += 4
        if size == 0:
            return
        meta = bytes(data[at : at + size])
        at += size
        root = flatbuffers.encode.Get(N.UOffsetTFlags.packer_type, meta, 0)
        msg = Table(meta, root)
        body_len = _scalar(msg, 3, N.Int64Flags, 0)
        body = data[at : at + body_len]
        at += body_len
        yield msg, body


def _field_pos(t, slot):
    return t.Offset(4 + 2 * slot)


def _scalar(t, slot, flags, default):
    o = _field_pos(t, slot)
    return t.Get(flags, o + t.Pos) if o else default


def _table(t, slot):
    o = _field_pos(t, slot)
    if not o:
        return None
    return Table(t.Bytes, t.Indirect(o + t.Pos))


def _string(t, slot):
    o = _field_pos(t, slot)
    return t.String(o + t.Pos).decode("utf-8") if o else None


def _vector(t, slot):
    """(start, length) of a vector field, or (0, 0)."""
    o = _field_pos(t, slot)
    if not o:
        return 0, 0
    return t.Vector(o), t.VectorLen(o)


def _type(ftable):
    kind = _scalar(ftable, 2, N.Uint8Flags, 0)
    t = _table(ftable, 3)
    if kind == _T_INT:
        return Int(_scalar(t, 0, N.Int32Flags, 0), bool(_scalar(t, 1, N.BoolFlags, False)))
    if kind == _T_FLOAT:
        return Float({0: 16, 1: 32, 2: 64}[_scalar(t, 0, N.Int16Flags, 0)])
    if kind == _T_UTF8:
        return Utf8()
    if kind == _T_BOOL:
        return Bool()
    if kind == _T_TIMESTAMP:
        return Timestamp(_scalar(t, 0, N.Int16Flags, 0), _string(t, 1))
    if kind == _T_DATE:
        return Date(_scalar(t, 0, N.Int16Flags, 1))
    raise IpcError(f"Arrow type number {kind} is not supported by this reader")


def _schema(msg):
    if _scalar(msg, 1, N.Uint8Flags, 0) != _SCHEMA:
        raise IpcError("the stream does not start with a schema")
    s = _table(msg, 2)
    start, count = _vector(s, 1)
    fields = []
    for k in range(count):
        ft = Table(s.Bytes, s.Indirect(start + 4 * k))
        fields.append(Field(_string(ft, 0) or "", _type(ft), bool(_scalar(ft, 1, N.BoolFlags, False))))
    return Schema(fields)


def read_schema(data):
    """The schema of an IPC stream."""
    for msg, _ in _messages(data):
        return _schema(msg)
    raise IpcError("an empty stream")


def read_batch(data):
    """The one record batch of an IPC stream (an empty batch when there is none)."""
    schema = None
    for msg, body in _messages(data):
        if schema is None:
            schema = _schema(msg)
            continue
        if _scalar(msg, 1, N.Uint8Flags, 0) != _RECORD_BATCH:
            raise IpcError("dictionary batches are not supported by this reader")
        rb = _table(msg, 2)
        if _table(rb, 3) is not None:
            raise IpcError("compressed batches are not supported by this reader")
        length = _scalar(rb, 0, N.Int64Flags, 0)
        nodes_at, nodes = _vector(rb, 1)
        bufs_at, nbufs = _vector(rb, 2)
        node = [struct.unpack_from("<qq", rb.Bytes, nodes_at + 16 * k) for k in range(nodes)]
        buffers = [struct.unpack_from("<qq", rb.Bytes, bufs_at + 16 * k) for k in range(nbufs)]
        columns = []
        b = 0
        for i, f in enumerate(schema.fields):
            n, nulls = node[i]
            validity = _bits(body, buffers[b], n) if nulls else None
            if isinstance(f.type, Utf8):
                offsets = _buffer(body, buffers[b + 1])
                values = bytes(_buffer(body, buffers[b + 2]))
                offs = struct.unpack_from(f"<{n + 1}i", offsets)
                col = [values[offs[j] : offs[j + 1]].decode("utf-8") for j in range(n)]
                b += 3
            elif isinstance(f.type, Bool):
                col = _bits(body, buffers[b + 1], n)
                b += 2
            else:
                col = list(struct.unpack_from(f"<{n}{_code(f.type)}", _buffer(body, buffers[b + 1])))
                b += 2
            if validity is not None:
                col = [v if ok else None for v, ok in zip(col, validity)]
            columns.append(col)
        if any(len(c) != length for c in columns):
            raise IpcError("a column's length differs from the batch's")
        return Batch(schema, columns)
    if schema is None:
        raise IpcError("an empty stream")
    return Batch(schema, [[] for _ in schema.fields])


def _buffer(body, spec):
    offset, length = spec
    return body[offset : offset + length]


def _bits(body, spec, n):
    raw = _buffer(body, spec)
    return [bool(raw[j >> 3] & (1 << (j & 7))) for j in range(n)]


def _code(t):
    if isinstance(t, Int):
        code = {8: "b", 16: "h", 32: "i", 64: "q"}[t.bits]
        return code if t.signed else code.upper()
    if isinstance(t, Float):
        return {32: "f", 64: "d"}[t.bits]
    if isinstance(t, Timestamp):
        return "q"
    if isinstance(t, Date):
        return "i" if t.unit == 0 else "q"
    raise IpcError(f"no fixed-width layout for {t}")


# --- writing -------------------------------------------------------------------------------


def _write_type(b, t):
    """(type number, offset of the type table)."""
    if isinstance(t, Int):
        b.StartObject(2)
        b.PrependInt32Slot(0, t.bits, 0)
        b.PrependBoolSlot(1, t.signed, False)
        return _T_INT, b.EndObject()
    if isinstance(t, Float):
        b.StartObject(1)
        b.PrependInt16Slot(0, {16: 0, 32: 1, 64: 2}[t.bits], 0)
        return _T_FLOAT, b.EndObject()
    if isinstance(t, Utf8):
        b.StartObject(0)
        return _T_UTF8, b.EndObject()
    if isinstance(t, Bool):
        b.StartObject(0)
        return _T_BOOL, b.EndObject()
    if isinstance(t, Timestamp):
        tz = b.CreateString(t.tz) if t.tz else None
        b.StartObject(2)
        b.PrependInt16Slot(0, t.unit, 0)
        if tz is not None:
            b.PrependUOffsetTRelativeSlot(1, tz, 0)
        return _T_TIMESTAMP, b.EndObject()
    if isinstance(t, Date):
        b.StartObject(1)
        b.PrependInt16Slot(0, t.unit, 1)
        return _T_DATE, b.EndObject()
    raise IpcError(f"cannot write a column of {t}")


def _message(header_type, build_header, body_length):
    b = flatbuffers.Builder(256)
    header = build_header(b)
    b.StartObject(5)
    b.PrependInt16Slot(0, _V5, 0)
    b.PrependUint8Slot(1, header_type, 0)
    b.PrependUOffsetTRelativeSlot(2, header, 0)
    b.PrependInt64Slot(3, body_length, 0)
    b.Finish(b.EndObject())
    meta = bytes(b.Output())
    meta += b"\0" * (-(len(meta) + 8) % 8)
    return struct.pack("<Ii", _CONTINUATION, len(meta)) + meta


def _schema_message(schema):
    def header(b):
        fields = []
        for f in schema.fields:
            name = b.CreateString(f.name)
            type_type, type_table = _write_type(b, f.type)
            b.StartVector(4, 0, 4)
            children = b.EndVector()
            b.StartObject(7)
            b.PrependUOffsetTRelativeSlot(0, name, 0)
            b.PrependBoolSlot(1, f.nullable, False)
            b.PrependUint8Slot(2, type_type, 0)
            b.PrependUOffsetTRelativeSlot(3, type_table, 0)
            b.PrependUOffsetTRelativeSlot(5, children, 0)
            fields.append(b.EndObject())
        b.StartVector(4, len(fields), 4)
        for f in reversed(fields):
            b.PrependUOffsetTRelative(f)
        vec = b.EndVector()
        b.StartObject(4)
        b.PrependInt16Slot(0, 0, 0)
        b.PrependUOffsetTRelativeSlot(1, vec, 0)
        return b.EndObject()

    return _message(_SCHEMA, header, 0)


_END = struct.pack("<Ii", _CONTINUATION, 0)


def write_schema(schema):
    """An IPC stream holding ``schema`` and no batch."""
    return _schema_message(schema) + _END


def _pack_bits(bits):
    out = bytearray((len(bits) + 7) // 8)
    for j, on in enumerate(bits):
        if on:
            out[j >> 3] |= 1 << (j & 7)
    return bytes(out)


def write_batch(batch):
    """An IPC stream holding ``batch`` as its one record batch."""
    n = batch.num_rows
    buffers, nodes, body = [], [], bytearray()

    def add(raw):
        buffers.append((len(body), len(raw)))
        body.extend(raw)
        body.extend(b"\0" * (-len(raw) % 8))

    for f, col in zip(batch.schema.fields, batch.columns):
        if len(col) != n:
            raise IpcError(f"column {f.name} has {len(col)} values for {n} rows")
        nulls = sum(1 for v in col if v is None)
        if nulls and not f.nullable:
            raise IpcError(f"column {f.name} is not nullable but has {nulls} nulls")
        nodes.append((n, nulls))
        add(_pack_bits([v is not None for v in col]) if nulls else b"")
        if isinstance(f.type, Utf8):
            encoded = [(v or "").encode("utf-8") for v in col]
            offsets = [0]
            for e in encoded:
                offsets.append(offsets[-1] + len(e))
            add(struct.pack(f"<{n + 1}i", *offsets))
            add(b"".join(encoded))
        elif isinstance(f.type, Bool):
            add(_pack_bits([bool(v) for v in col]))
        else:
            zero = 0.0 if isinstance(f.type, Float) else 0
            add(struct.pack(f"<{n}{_code(f.type)}", *[zero if v is None else v for v in col]))

    def header(b):
        b.StartVector(16, len(buffers), 8)
        for offset, length in reversed(buffers):
            b.Prep(8, 16)
            b.PrependInt64(length)
            b.PrependInt64(offset)
        bufs = b.EndVector()
        b.StartVector(16, len(nodes), 8)
        for length, nulls in reversed(nodes):
            b.Prep(8, 16)
            b.PrependInt64(nulls)
            b.PrependInt64(length)
        nds = b.EndVector()
        b.StartObject(5)
        b.PrependInt64Slot(0, n, 0)
        b.PrependUOffsetTRelativeSlot(1, nds, 0)
        b.PrependUOffsetTRelativeSlot(2, bufs, 0)
        return b.EndObject()

    return _schema_message(batch.schema) + _message(_RECORD_BATCH, header, len(body)) + bytes(body) + _END
