"""The pure-Python IPC reader and writer against pyarrow, an independent implementation."""

import os
import sys
import unittest
from types import SimpleNamespace

import pyarrow as pa

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sluice_sdk import (  # noqa: E402
    Batch, Bool, ConfigError, Date, Field, Float, Int, Schema, Timestamp, Transform, Utf8,
    read_batch, read_schema, write_batch, write_schema,
)
from sluice_sdk import _exported  # noqa: E402


def arrow_table():
    return pa.table(
        {
            "id": pa.array(["a", None, "ccc", "", "é"], pa.string()),
            "t": pa.array([20.5, 26.0, None, 30.25, -1.0], pa.float64()),
            "f": pa.array([1.5, None, 2.5, 3.5, 4.5], pa.float32()),
            "n": pa.array([1, 2, 3, None, -5], pa.int64()),
            "u": pa.array([1, 2, 3, 4, 250], pa.uint8()),
            "ok": pa.array([True, False, None, True, False]),
            "at": pa.array([1, 2, None, 4, 5], pa.timestamp("us", tz="UTC")),
            "d": pa.array([0, 1, 2, None, 4], pa.date32()),
        }
    )


def stream(table, batches=True):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        if batches:
            w.write_table(table)
    return sink.getvalue().to_pybytes()


class IpcTest(unittest.TestCase):
    def test_a_pyarrow_stream_reads_by_value(self):
        t = arrow_table()
        batch = read_batch(stream(t))
        self.assertEqual([f.name for f in batch.schema.fields], t.column_names)
        self.assertEqual(batch.schema.fields[0].type, Utf8())
        self.assertEqual(batch.schema.fields[4].type, Int(8, False))
        self.assertEqual(batch.schema.fields[6].type, Timestamp(2, "UTC"))
        self.assertEqual(batch.schema.fields[7].type, Date(0))
        self.assertEqual(batch.column("id"), ["a", None, "ccc", "", "é"])
        self.assertEqual(batch.column("t"), [20.5, 26.0, None, 30.25, -1.0])
        self.assertEqual(batch.column("n"), [1, 2, 3, None, -5])
        self.assertEqual(batch.column("ok"), [True, False, None, True, False])
        self.assertEqual(batch.column("at"), [1, 2, None, 4, 5])
        self.assertEqual(read_schema(stream(t, batches=False)).fields, batch.schema.fields)
        self.assertEqual(read_batch(stream(t, batches=False)).num_rows, 0)

    def test_what_it_writes_pyarrow_reads_back_equal(self):
        t = arrow_table()
        ours = write_batch(read_batch(stream(t)))
        back = pa.ipc.open_stream(ours).read_all()
        self.assertTrue(back.equals(t), f"{back}\n!=\n{t}")
        schema_only = pa.ipc.open_stream(write_schema(read_schema(stream(t))))
        self.assertEqual(schema_only.schema, t.schema)
        self.assertEqual(schema_only.read_all().num_rows, 0)

    def test_take_filter_and_a_new_column(self):
        b = read_batch(stream(arrow_table()))
        kept = b.filter([v is not None and v > 25 for v in b.column("t")])
        self.assertEqual(kept.column("id"), [None, ""])
        more = kept.with_column(Field("hot", Bool(), False), [True, True])
        back = pa.ipc.open_stream(write_batch(more)).read_all()
        self.assertEqual(back.column("hot").to_pylist(), [True, True])
        self.assertFalse(back.schema.field("hot").nullable)


class Types:
    """Stand-ins for the bindings componentize-py generates."""

    ConfigError = lambda path, message: SimpleNamespace(path=path, message=message)  # noqa: E731
    OutputDecl = lambda name, schema: SimpleNamespace(name=name, schema=schema)  # noqa: E731
    Description = lambda outputs, state_format: SimpleNamespace(outputs=outputs, state_format=state_format)  # noqa: E731
    OutputBatch = lambda output, batch: SimpleNamespace(output=output, batch=batch)  # noqa: E731
    ProcessError_InvalidInput = lambda v: ("invalid-input", v)  # noqa: E731
    ProcessError_Failed = lambda v: ("failed", v)  # noqa: E731


class Err(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


class Warm(Transform):
    @staticmethod
    def describe(config, input):
        if not isinstance(config.get("above"), (int, float)):
            raise ConfigError(["above"], "expected a number")
        return {"main": input}

    def open(self, config, input):
        self.above = config["above"]

    def process(self, batch):
        return batch.filter([v is not None and v > self.above for v in batch.column("t")])


class ExportTest(unittest.TestCase):
    def test_the_export_runs_through_ipc_bytes_and_maps_errors(self):
        t = arrow_table()
        exported = _exported(Warm, object, Types, Err)()
        schema = stream(t, batches=False)
        d = exported.describe('{"above": 25}', schema)
        self.assertEqual([o.name for o in d.outputs], ["main"])
        with self.assertRaises(Err) as e:
            exported.describe('{"above": "x"}', schema)
        self.assertEqual(e.exception.value.path, ["above"])
        with self.assertRaises(Err) as e:
            exported.describe("{nope", schema)
        self.assertIn("not JSON", e.exception.value.message)
        exported.open('{"above": 25}', schema)
        out = exported.process(stream(t))
        self.assertEqual([o.output for o in out], ["main"])
        self.assertEqual(pa.ipc.open_stream(out[0].batch).read_all().column("id").to_pylist(), [None, ""])
        with self.assertRaises(Err) as e:
            exported.process(b"\x01\x02")
        self.assertEqual(e.exception.value[0], "invalid-input")


class Traced(Warm):
    @staticmethod
    def describe(config, input):
        return {**Warm.describe(config, input), "lineage": ["main"]}


class LineageTest(unittest.TestCase):
    def test_rows_built_from_the_input_carry_their_input_row(self):
        t = arrow_table()
        exported = _exported(Traced, object, Types, Err)()
        schema = stream(t, batches=False)
        d = exported.describe('{"above": 25}', schema)
        self.assertEqual(read_schema(d.outputs[0].schema).fields[-1], Field("_sluice_row", Int(32, False), True))
        exported.open('{"above": 25}', schema)
        out = pa.ipc.open_stream(exported.process(stream(t))[0].batch).read_all()
        self.assertEqual(out.column("_sluice_row").to_pylist(), [1, 3])
        self.assertEqual(out.column("id").to_pylist(), [None, ""])


if __name__ == "__main__":
    unittest.main()
