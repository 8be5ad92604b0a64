"""What filling the catalog costs a fleet sweep (issue #16: "a fleet sweep fills the catalog").

Input (generated in a temp folder): ``--models`` targets (default 1,000), each a folder of two
small files (a safetensors file and a config.json), listed one target per line.

Measured on a local Ray of 2 CPUs, each sweep with a warm verdict cache, so the scan itself costs
as little as it can and the catalog's share shows:

* the sweep alone (cache in a SQLite file);
* the same sweep with ``--database-url sqlite:///...`` (catalog entries written, first sweep: all
  models new), then again (every model updated, the usual daily re-verification);
* with ``--postgres URL`` (or ``MODELSHIELD_TEST_DATABASE_URL``): the same on PostgreSQL.

Printed: models/s, the catalog's cost per model in ms, and the ratio against the sweep alone.
Run: ``.venv/bin/python benchmarks/bench_fleet_catalog.py [--models 1000] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import tempfile
import time
import uuid
from pathlib import Path


def write_models(root: Path, count: int) -> list[str]:
    """``count`` model folders of two small distinct files; their paths."""
    targets = []
    for i in range(count):
        folder = root / f"model-{i:05d}"
        folder.mkdir(parents=True)
        header = json.dumps({f"w{i}": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
        (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
        (folder / "config.json").write_text(json.dumps({"hidden_size": 4, "id": i}))
        targets.append(str(folder))
    return targets


def sweep(targets: list[str], cache: Path, database_url: str | None) -> tuple[float, str]:
    """Wall time of one sweep (warm cache unless first), and the catalog summary line."""
    from modelshield.fleet.engine import FleetConfig, run_fleet
    from modelshield.scan import ScanOptions

    config = FleetConfig(cache=True, cache_path=str(cache), database_url=database_url)
    t0 = time.perf_counter()
    _outcome, stats = run_fleet(targets, ScanOptions(), config)
    return time.perf_counter() - t0, stats.catalog


def new_postgres_database(server_url: str) -> str:
    """A new empty database on the server of ``server_url`` (SQLAlchemy URL)."""
    import psycopg

    scheme, rest = server_url.split("://", 1)
    plain = f"{scheme.split('+', 1)[0]}://{rest}"
    name = f"bench_fleet_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url.rpartition('/')[0]}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000, help="targets to sweep (default 1000)")
    parser.add_argument("--postgres", default=os.environ.get("MODELSHIELD_TEST_DATABASE_URL"), help="server URL")
    args = parser.parse_args()
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        targets = write_models(work / "models", args.models)
        cache = work / "verdicts.sqlite"
        sweep(targets, cache, None)  # fills the cache
        alone = min(sweep(targets, cache, None)[0] for _ in range(2))
        print(f"{args.models} models ({2 * args.models} files), warm cache, Ray 2 CPUs")
        print(f"{'sweep':44} {'seconds':>8} {'models/s':>9} {'catalog ms/model':>17} {'vs alone':>9}")
        print(f"{'alone (no catalog)':44} {alone:8.2f} {args.models / alone:9.0f} {'-':>17} {'1.00x':>9}")
        kinds = [("sqlite", f"sqlite:///{work / 'catalog.db'}")]
        if args.postgres:
            kinds.append(("postgresql", new_postgres_database(args.postgres)))
        for kind, url in kinds:
            for label in ("first sweep, all new", "re-sweep, all updated"):
                seconds, summary = sweep(targets, cache, url)
                per_model = 1000 * (seconds - alone) / args.models
                name = f"{kind}: {label}"
                ratio = f"{seconds / alone:.2f}x"
                print(f"{name:44} {seconds:8.2f} {args.models / seconds:9.0f} {per_model:17.2f} {ratio:>9}")
                print(f"    {summary}")
    ray.shutdown()


if __name__ == "__main__":
    main()
