"""filter: keep the rows whose ``column`` compares with ``value`` as ``op`` says; a row whose
value is null is dropped, as SQL's WHERE drops unknown.

    [transform.config]
    column = "temperature"
    op = ">"          # = != < <= > >=
    value = 25
"""

import operator

from sluice_sdk import ConfigError, Float, Int, Transform as Base, Utf8, export

OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class Filter(Base):
    @staticmethod
    def describe(config, input):
        for key in config:
            if key not in ("column", "op", "value"):
                raise ConfigError([key], f"unknown key `{key}`; the filter takes column, op and value")
        name = config.get("column")
        i = input.index(name) if isinstance(name, str) else None
        if i is None:
            names = ", ".join(f.name for f in input.fields)
            raise ConfigError(["column"], f"no column `{name}` in the input (it has {names})")
        if config.get("op") not in OPS:
            raise ConfigError(["op"], "expected one of = != < <= > >=")
        kind = input.fields[i].type
        value = config.get("value")
        numeric = isinstance(kind, (Int, Float)) and isinstance(value, (int, float)) and not isinstance(value, bool)
        text = isinstance(kind, Utf8) and isinstance(value, str)
        if not (numeric or text):
            raise ConfigError(["value"], f"`{name}` is {type(kind).__name__} and cannot be compared with {value!r}")
        # As the stock filter: kept rows name their input row, for later stages' dead letters.
        return {"main": input, "lineage": ["main"]}

    def open(self, config, input):
        self.column = config["column"]
        self.test = OPS[config["op"]]
        self.value = config["value"]

    def process(self, batch):
        values = batch.column(self.column)
        return batch.filter([v is not None and self.test(v, self.value) for v in values])


Transform = export(Filter)
