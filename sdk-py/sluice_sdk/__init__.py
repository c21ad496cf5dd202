"""sluice-sdk for Python: write a Sluice transform as one class over record batches and build
it into a component with componentize-py.

    from sluice_sdk import ConfigError, Transform, export

    class KeepWarm(Transform):
        @staticmethod
        def describe(config, input):          # type-check; return the outputs
            if not isinstance(config.get("above"), (int, float)):
                raise ConfigError(["above"], "expected a number")
            return {"main": input}

        def open(self, config, input):
            self.above = config["above"]

        def process(self, batch):             # a Batch in, rows out
            t = batch.column("temperature")
            return batch.filter([v is not None and v > self.above for v in t])

    Transform = export(KeepWarm)              # what componentize-py looks for

Whole batches cross the boundary, never single records. Columns are Python lists (see
``ipc``), which is simple rather than fast: a Python transform is for logic that is easier
to say in Python, not for the hot path.
"""

import json

from .ipc import INPUT, Batch, Bool, Date, Field, Float, Int, IpcError, Schema, Timestamp, Utf8, read_batch, read_schema, write_batch, write_schema

__all__ = [
    "Batch",
    "Bool",
    "ConfigError",
    "Date",
    "Field",
    "Float",
    "Int",
    "InvalidInput",
    "IpcError",
    "MAIN",
    "ProcessError",
    "REJECTED",
    "REASON_COLUMN",
    "Schema",
    "Timestamp",
    "Transform",
    "Utf8",
    "export",
    "read_batch",
    "read_schema",
    "rejected_schema",
    "write_batch",
    "write_schema",
]

MAIN = "main"
REJECTED = "rejected"
REASON_COLUMN = "_sluice_reason"
ROW_COLUMN = "_sluice_row"


def _row_at(name, count):
    """Where the lineage column goes: last, or in ``rejected`` just before the reason."""
    return count - 1 if name == REJECTED else count


def _wire(name, schema, traced):
    """``schema`` as the host receives it: with the lineage column when ``name`` is traced."""
    if name not in traced:
        return schema
    fields = list(schema.fields)
    fields.insert(_row_at(name, len(fields)), Field(ROW_COLUMN, Int(32, False), True))
    return Schema(fields)


def _with_lineage(name, batch):
    """``batch`` with the lineage column: input rows, or nulls when not known."""
    rows = batch.rows
    if rows == INPUT:
        rows = list(range(batch.num_rows))
    values = rows if rows is not None else [None] * batch.num_rows
    at = _row_at(name, len(batch.schema.fields))
    fields = list(batch.schema.fields)
    fields.insert(at, Field(ROW_COLUMN, Int(32, False), True))
    columns = list(batch.columns)
    columns.insert(at, list(values))
    return Batch(Schema(fields), columns)


class ConfigError(Exception):
    """A problem with the transform's ``config`` table: where (key path) and what."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = [str(p) for p in path]
        self.message = message


class ProcessError(Exception):
    """A batch the transform could not process: the pipeline's ``on_error`` policy applies."""


class InvalidInput(ProcessError):
    """A batch that does not match the schema given at ``open``."""


def rejected_schema(input):
    """A rejected output's schema: ``input``'s columns and the reason last."""
    return Schema(input.fields + [Field(REASON_COLUMN, Utf8(), False)])


class Transform:
    """The base of a transform. Override ``describe``, ``open`` and ``process``."""

    @staticmethod
    def describe(config, input):
        """Type-check ``config`` against ``input`` (a Schema) and declare the outputs:
        ``{"main": Schema, "rejected": Schema, ...}``. Raise ConfigError when it is wrong.
        ``"lineage": ["main", "rejected"]`` makes rows of those outputs made from the input
        batch with ``take``/``filter``/``with_column`` name their input row, so their dead
        letters name their own record."""
        return {MAIN: input}

    def open(self, config, input):
        """Prepare for batches of ``input`` with ``config``."""

    def process(self, batch):
        """One Batch in; return a Batch for ``main``, a dict of outputs, or None."""
        return batch

    def finish(self):
        """The input ended: emit what is still held."""
        return None


def export(cls):
    """The class componentize-py exports as the ``transform`` interface, for ``cls``."""
    from wit_world import exports  # only inside a component
    from wit_world.imports import types
    from componentize_py_types import Err

    return _exported(cls, exports.Transform, types, Err)


def _exported(cls, protocol, types, Err):
    """The wrapper, with the bindings given (so that it runs natively in tests too)."""

    def config_err(e):
        if isinstance(e, ConfigError):
            return Err(types.ConfigError(path=e.path, message=e.message))
        return Err(types.ConfigError(path=[], message=str(e)))

    def parse(text):
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError as e:
            raise config_err(ConfigError([], f"the config is not JSON: {e}"))

    def describe(config, input):
        try:
            outputs = dict(cls.describe(config, input))
        except Exception as e:
            raise config_err(e)
        traced = set(outputs.pop("lineage", None) or [])
        if not isinstance(outputs.get(MAIN), Schema):
            raise config_err(ConfigError([], "describe must declare a `main` output schema"))
        return outputs, traced & set(outputs)

    def process_err(e):
        if isinstance(e, InvalidInput):
            return Err(types.ProcessError_InvalidInput(str(e)))
        return Err(types.ProcessError_Failed(f"{type(e).__name__}: {e}"))

    class Exported(protocol):
        instance = None
        declared = None
        traced = set()
        input = None

        def describe(self, config, input):
            outputs, traced = describe(parse(config), read_schema(input))
            names = [MAIN] + [n for n in outputs if n != MAIN]
            return types.Description(
                outputs=[types.OutputDecl(name=n, schema=write_schema(_wire(n, outputs[n], traced))) for n in names],
                state_format=None,
            )

        def open(self, config, input):
            config = parse(config)
            schema = read_schema(input)
            Exported.declared, Exported.traced = describe(config, schema)
            Exported.input = schema
            Exported.instance = cls()
            try:
                Exported.instance.open(config, schema)
            except Exception as e:
                raise config_err(e)

        def emit(self, result):
            if result is None:
                return []
            pairs = [(MAIN, result)] if isinstance(result, Batch) else list(result.items())
            out = []
            for name, batch in pairs:
                if batch is None or batch.num_rows == 0:
                    continue
                schema = Exported.declared.get(name)
                if schema is None:
                    raise ProcessError(f"emitted to output `{name}`, which describe did not declare")
                if batch.schema.fields != schema.fields:
                    raise ProcessError(f"rows for `{name}` do not have the declared schema")
                if name in Exported.traced:
                    batch = _with_lineage(name, batch)
                out.append(types.OutputBatch(output=name, batch=write_batch(batch)))
            return out

        def process(self, batch):
            try:
                rows = read_batch(batch)
            except Exception as e:
                raise process_err(InvalidInput(f"the batch cannot be read: {e}"))
            if rows.schema.fields != Exported.input.fields:
                raise process_err(InvalidInput("the batch does not have the schema given at open"))
            rows.rows = INPUT
            try:
                return self.emit(Exported.instance.process(rows))
            except Exception as e:
                raise process_err(e)

        def advance_watermark(self, watermark):
            return []

        def finish(self):
            try:
                return self.emit(Exported.instance.finish())
            except Exception as e:
                raise process_err(e)

        def snapshot(self):
            return None

        def restore(self, state):
            raise Err(types.RestoreError_UnsupportedVersion(state.format_version))

    return Exported
