"""The emulator of scripts/emulator.py for the benchmark, with one change to moto.

moto backs up every table a DynamoDB transaction names with a deep copy of the whole table,
once per item of the transaction, so that it can roll back a failed one. With the thousand
grants the sweep is measured on (several thousand items), each transaction costs the
emulator seconds and the copies pile up as gigabytes of garbage. Here a transaction backs up
only the items it touches and, when it fails, puts exactly those back: the same outcome for
every transaction, at a cost that does not grow with the table.

Usage: as scripts/emulator.py.
"""

import copy
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))

import emulator  # noqa: E402  scripts/emulator.py
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402

whole_table_backup = DynamoDBBackend.transact_write_items


def key_of(table, op):
    if "Key" in op:
        return op["Key"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: op["Item"][name] for name in names}


def transact_write_items(self, transact_items):
    backups = []
    for entry in transact_items:
        op = next(iter(entry.values()), {})
        table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        if table is None:
            continue
        key = key_of(table, op)
        backups.append((table.name, key, copy.deepcopy(self.get_item(table.name, key))))
    # Inside the original, "backing up" a table hands back the table itself ...
    Table.__deepcopy__ = lambda table, memo: table
    try:
        return whole_table_backup(self, transact_items)
    except Exception:
        # ... so a failed transaction is undone here, item by item, newest first.
        for table_name, key, old in reversed(backups):
            if old is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, old.to_json()["Attributes"])
        raise
    finally:
        del Table.__deepcopy__


DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.exit(emulator.main())
