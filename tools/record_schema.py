"""Write docs/record.schema.json, the JSON Schema of a stored build record, from handoff.record.

Run it after changing the record's dataclasses: ``.venv/bin/python tools/record_schema.py``;
tests/test_record.py fails while the checked-in schema differs from the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from handoff.record import record_schema

TARGET = Path(__file__).resolve().parents[1] / "docs" / "record.schema.json"


def schema_text() -> str:
    return json.dumps(record_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    TARGET.write_text(schema_text())
    print(f"wrote {TARGET}")
