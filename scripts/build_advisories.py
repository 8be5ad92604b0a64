"""Build the shipped advisory database from OSV records and curation files.

Usage: python scripts/build_advisories.py [SOURCE_FOLDER] [OUTPUT_JSON]

SOURCE_FOLDER holds ``osv/*.json`` and ``curation/*.yaml`` (default: ../shared/advisories);
OUTPUT_JSON defaults to src/modelshield/data/advisories/advisories.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

from modelshield.advisories.db import shipped_path
from modelshield.advisories.osv import build_from_folder
from modelshield.errors import ModelShieldError

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "advisories"


def main(argv: list[str]) -> int:
    """Build and write the database; print a one-line summary."""
    source = Path(argv[0]) if argv else DEFAULT_SOURCE
    output = Path(argv[1]) if len(argv) > 1 else shipped_path()
    try:
        db = build_from_folder(source)
    except ModelShieldError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 2
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(db.to_json(), encoding="utf-8")
    relevant = sum(a.relevant for advs in db.packages.values() for a in advs)
    counts = f"{len(db)} advisories, {len(db.packages)} packages, {relevant} model-loading relevant"
    print(f"{output}: {counts}, snapshot {db.snapshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
