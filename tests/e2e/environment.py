"""Cases that need a different environment for their one subprocess: plug-ins, missing packages, old loaders, policies.

Everything is written into the case folder and put on that subprocess' ``PYTHONPATH`` only:

* a plug-in reader (a module plus a ``.dist-info`` with an ``entry_points.txt``), loaded with
  ``MODELSHIELD_PLUGINS=1`` the way a third-party package registers one;
* a package that raises ImportError on import, shadowing an installed one (what the scanner
  sees where that optional dependency is not installed);
* ``.dist-info`` metadata of an old loader version (what ``--env`` reads; nothing is importable).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.e2e.model import Scan, Where

PLUGIN_MODULE = '''\
"""e2e test plug-in: a reader that fails on the content it claims (a plug-in bug the scanner must contain)."""

from modelshield.formats.interface import Reader, register_reader


@register_reader
class FailingReader(Reader):
    name = "e2e-failing"
    priority = 990

    def sniff(self, head, blob):
        return head.startswith(b"MSE2E-FAIL")

    def read(self, blob, ctx):
        raise RuntimeError("e2e plug-in reader failed")
        yield
'''


def _dist_info(site: Path, name: str, version: str, entry_points: str = "") -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if entry_points:
        (info / "entry_points.txt").write_text(entry_points)


def failing_plugin_reader(w: Where) -> Scan:
    """A file claimed by a plug-in reader (entry point ``modelshield.readers``) that raises while reading."""
    site = w.path("site", "e2e_failing_reader.py").parent
    (site / "e2e_failing_reader.py").write_text(PLUGIN_MODULE)
    _dist_info(site, "e2e-failing-reader", "1.0", "[modelshield.readers]\nfailing = e2e_failing_reader\n")
    path = w.path("model.bin")
    path.write_bytes(b"MSE2E-FAIL" + bytes(range(64)))
    return Scan(path, env={"PYTHONPATH": str(site), "MODELSHIELD_PLUGINS": "1"})


def without(module: str, build: Callable[[Where], Scan]) -> Callable[[Where], Scan]:
    """``build``'s fixture scanned where ``module`` cannot be imported (shadowed by a package that raises)."""

    def wrapped(w: Where) -> Scan:
        site = w.path("site", module, "__init__.py").parent.parent
        (site / module / "__init__.py").write_text(f"raise ImportError('{module} is hidden for this e2e case')\n")
        scan = build(w)
        return Scan(scan.target, scan.args, {**scan.env, "PYTHONPATH": str(site)}, scan.timeout_s)

    wrapped.__doc__ = f"{build.__doc__} Scanned without {module} importable."
    return wrapped


def config_json(w: Where) -> Scan:
    """A plain transformers-style config.json."""
    path = w.path("config.json")
    path.write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    return Scan(path)


def h5_weights(w: Where) -> Scan:
    """A plain HDF5 weights file written by h5py."""
    import h5py
    import numpy as np

    path = w.path("model.h5")
    with h5py.File(path, "w") as h5:
        h5["dense/kernel"] = np.ones((2, 2), np.float32)
    return Scan(path)


def with_old_loader(package: str, version: str, build: Callable[[Where], Scan]) -> Callable[[Where], Scan]:
    """``build``'s fixture scanned with ``--env`` where metadata says ``package`` ``version`` is installed."""

    def wrapped(w: Where) -> Scan:
        site = w.dir / "site"
        _dist_info(site, package, version)
        scan = build(w)
        env = {**scan.env, "PYTHONPATH": str(site)}
        return Scan(scan.target, (*scan.args, "--env"), env, scan.timeout_s)

    wrapped.__doc__ = f"{build.__doc__} Scanned with --env, {package} {version} installed (metadata only)."
    return wrapped


def gguf_file(template: str | None) -> Callable[[Where], Scan]:
    """A builder writing a GGUF file (with ``template`` as chat template, if given)."""

    def build(w: Where) -> Scan:
        from tests.e2e.weights import write_gguf

        return Scan(write_gguf(w.path("model.gguf"), template=template))

    build.__doc__ = "GGUF file" + (" with a chat template." if template else " without a chat template.")
    return build


def expired_waiver(w: Where) -> Scan:
    """A torch checkpoint gated by a policy (``modelshield policy init``'s starter) whose waiver for it expired."""
    from tests.e2e.weights import torch_checkpoint

    from modelshield.policy.defaults import STARTER

    waiver = (
        "waivers:\n  - {rule: denied_formats, model: '*.pt', owner: ml-platform@example.com,"
        " reason: legacy checkpoint, expires: 2024-01-31}\n"
    )
    policy = w.path("policy.yaml")
    policy.write_text(STARTER.replace("waivers: []\n", waiver))
    scan = torch_checkpoint(w)
    return Scan(scan.target, ("--policy", str(policy), "--profile", "production"))
