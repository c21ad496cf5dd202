"""identity: every row of every batch, unchanged (through the SDK's reader and writer, so
it proves both). Build: componentize-py -d ../../wit -w transformer componentize identity -p . -p .. -o identity.wasm"""

from sluice_sdk import Transform as Base, export


class Identity(Base):
    pass


Transform = export(Identity)
