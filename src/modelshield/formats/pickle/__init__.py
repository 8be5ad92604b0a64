"""The pickle engine: a symbolic VM over every opcode of protocols 0-5, and the pickle reader.

Stable public names (other readers, analyzers and the bypass corpus rely on them):

* :func:`iter_pickle_streams` (``vm.py``): parse every pickle stream in a binary stream and yield
  :class:`PickleStream` IR objects, findings and child blobs.
* :func:`parse_one_stream` (``vm.py``): parse exactly one stream at the current position.
* :func:`sniff_pickle` (``vm.py``): content-based detection of pickles of any protocol.
* IR and symbolic values (``values.py``): :class:`PickleStream`, :class:`CallSite`,
  :class:`GlobalRef`, :class:`Call`, :class:`Large`, :class:`SDict`, :class:`SList`, ... and the
  ``USE_*`` flags saying how a global is used.

Nothing in this package executes what it reads.
"""

from __future__ import annotations

from modelshield.formats.pickle.values import (
    USE_CALL,
    USE_CONSTRUCT,
    USE_MUTATE,
    USE_PERSID,
    Buffer,
    Call,
    CallSite,
    Embedded,
    GlobalRef,
    Large,
    PersId,
    PickleStream,
    SDict,
    SList,
    SSet,
    render,
)
from modelshield.formats.pickle.vm import PickleVM, iter_pickle_streams, parse_one_stream, sniff_pickle

__all__ = [
    "USE_CALL",
    "USE_CONSTRUCT",
    "USE_MUTATE",
    "USE_PERSID",
    "Buffer",
    "Call",
    "CallSite",
    "Embedded",
    "GlobalRef",
    "Large",
    "PersId",
    "PickleStream",
    "PickleVM",
    "SDict",
    "SList",
    "SSet",
    "iter_pickle_streams",
    "parse_one_stream",
    "render",
    "sniff_pickle",
]
