"""Tampering and backdoor detection: structure checks, diff against a trusted base, weight statistics, deep scan.

* :mod:`~modelshield.tamper.structure` — reference-free: the tensor table must match the declared
  architecture and itself (runs in every scan through ``analyzers/tamper_structure.py``);
* :mod:`~modelshield.tamper.diff` — ``modelshield diff REFERENCE CANDIDATE`` / ``scan --reference``;
* :mod:`~modelshield.tamper.stats` — per-tensor weight statistics (informational);
* :mod:`~modelshield.tamper.deep` — Neural-Cleanse trigger reverse-engineering (``--deep``, torch).

The diff and the statistics need numpy (``pip install modelshield[tamper]``); the structure check
needs nothing beyond the standard library.
"""

from __future__ import annotations
