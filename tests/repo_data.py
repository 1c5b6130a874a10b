"""Where this repository keeps the data its tests read (``tests/data/``).

* ``tests/data/real/`` — real Pioreactor recordings (an OD time series and a
  multi-angle calibration table), copied byte-for-byte from the MIT-licensed
  Pioreactor repository; origin, licence and documented facts in its README.
* ``tests/data/spec/endpoints.tsv`` — every endpoint of the HTTP contract we
  serve (243 rows: method, path, handler, source document).

The suite needs nothing outside the clone.
"""

import csv
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def real_data_dir() -> Path:
    """Folder of the real bioreactor recordings (``tests/data/real``)."""
    return DATA / "real"


def endpoints_file() -> Path:
    """``endpoints.tsv`` of the contract (``tests/data/spec/endpoints.tsv``)."""
    return DATA / "spec" / "endpoints.tsv"


def spec_endpoints(patterns: list[str] | None = None) -> list[tuple[str, str]]:
    """``(METHOD, path)`` rows of ``endpoints.tsv``, sorted and unique; only paths matching one of
    ``patterns`` (regular expressions, whole path) when given."""
    with endpoints_file().open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return sorted({(r["method"].upper(), r["path"]) for r in rows
                   if patterns is None or any(re.fullmatch(p, r["path"]) for p in patterns)})
