"""Fleet scans: many models on a Ray cluster, with a content-addressed verdict cache.

Each listed file is one Ray task running :func:`modelshield.scan.scan_file`, the per-file scan
``--jobs`` runs, so a fleet scan analyses exactly what a local scan does. Results stream as JSON
Lines while they arrive; the final report is the same :class:`~modelshield.types.ScanReport` a
local scan renders (JSON, SARIF, text).

* :mod:`~modelshield.fleet.listing`: LIST files and targets -> the files to scan (paths, ``hf://``
  cache ids, fsspec URLs), every line accounted for.
* :mod:`~modelshield.fleet.fetch`: open, fingerprint (size, mtime, SHA-256) and re-check a file.
* :mod:`~modelshield.fleet.cache`: verdicts keyed by content (SQLite file or the catalog database).
* :mod:`~modelshield.fleet.engine`: the driver (back-pressure, retries, timeouts, de-duplication).
* :mod:`~modelshield.fleet.task`: what a Ray worker runs for one file.

Ray and fsspec are the ``ray`` extra, imported only when a fleet scan starts.
"""

from __future__ import annotations
