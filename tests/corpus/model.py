"""Sample metadata, the build context handed to generators, and the registry of generators."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: How each loader kind really loads a sample (run only inside a throwaway subprocess; see tests/corpus/proof.py).
#: Variables available to the code: ``p`` (sample path), ``canary`` (canary path), ``MEMBER`` (sample.member).
LOADERS: dict[str, str] = {
    "pickle": "import pickle\nwith open(p, 'rb') as f:\n    pickle.load(f)",
    "pickle-stream": (
        "import pickle\nwith open(p, 'rb') as f:\n    while True:\n        try:\n            pickle.load(f)\n"
        "        except EOFError:\n            break"
    ),
    "pickle-buffers": "import pickle\npickle.loads(open(p, 'rb').read(), buffers=[('touch ' + canary).encode()])",
    "torch": "import torch\ntorch.load(p, weights_only=False)",
    "joblib": "import joblib\njoblib.load(p)",
    "numpy": (
        "import numpy\nr = numpy.load(p, allow_pickle=True)\nif hasattr(r, 'files'):\n    [r[k] for k in r.files]"
    ),
    "dill": "import dill\nwith open(p, 'rb') as f:\n    dill.load(f)",
    "pandas": "import pandas\npandas.read_pickle(p)",
    "zip-member": (
        "import zipfile, pickle\nz = zipfile.ZipFile(p)\nfor n in z.namelist():\n"
        "    if n.endswith(MEMBER):\n        pickle.loads(z.read(n))"
    ),
    "7z-member": (
        "import py7zr, tempfile, pickle, os\nd = tempfile.mkdtemp()\nwith py7zr.SevenZipFile(p) as a:\n"
        "    a.extractall(d)\nfor root, _, fs in os.walk(d):\n    for f in fs:\n        if f.endswith(MEMBER):\n"
        "            pickle.load(open(os.path.join(root, f), 'rb'))"
    ),
    "tar-member": (
        "import tarfile, pickle\nwith tarfile.open(p) as t:\n    for m in t.getmembers():\n"
        "        if m.name.endswith(MEMBER):\n            pickle.load(t.extractfile(m))"
    ),
    "nested-zip-tar-zip": (
        "import zipfile, tarfile, pickle, io\nouter = zipfile.ZipFile(p)\n"
        "t = tarfile.open(fileobj=io.BytesIO(outer.read('bundle.tar')))\n"
        "inner = zipfile.ZipFile(t.extractfile('model.zip'))\npickle.loads(inner.read(MEMBER))"
    ),
    "none": "raise RuntimeError('this sample is never executed')",
}


@dataclass(frozen=True)
class Ctx:
    """What a generator needs: where to put canaries and auxiliary files, and ready-made harmless commands."""

    root: Path
    name: str

    @property
    def canary_dir(self) -> Path:
        """Directory where payloads create their canary."""
        return self.root / "canaries"

    @property
    def canary(self) -> str:
        """Absolute canary path for this sample."""
        return str(self.canary_dir / f"canary-{self.name}")

    @property
    def cmd(self) -> str:
        """Shell command that creates the canary."""
        return f"touch {self.canary}"

    @property
    def argv(self) -> list[str]:
        """argv that creates the canary."""
        return [self.touch, self.canary]

    @property
    def touch(self) -> str:
        """Absolute path of the touch binary."""
        return shutil.which("touch") or "/usr/bin/touch"

    @property
    def pycode(self) -> str:
        """Python source that creates the canary."""
        return f"open({self.canary!r}, 'w').close()"

    def aux(self, filename: str, data: bytes | str) -> str:
        """Write an auxiliary file shipped next to the model (a script, a .pth, an inner archive); return its path."""
        folder = self.root / "aux" / self.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def aux_dir(self) -> str:
        """The auxiliary directory of this sample."""
        folder = self.root / "aux" / self.name
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)


@dataclass(frozen=True)
class Spec:
    """A malicious-sample generator and its metadata.

    ``loader``: key of :data:`LOADERS`; ``fires``: the real loader triggers the payload (proven in a subprocess);
    ``primitives``: the dangerous callables or tricks it uses; ``setup``: code the loader needs first (e.g.
    ``copyreg.add_extension`` for EXT opcodes); ``isolate``: the payload replaces or pollutes the process, so
    prove it in its own subprocess; ``bypass``: id of the public bypass family it reproduces (tests/bypasses/).
    """

    name: str
    family: str
    build: Callable[[Ctx], bytes]
    loader: str = "pickle"
    fires: bool = True
    primitives: tuple[str, ...] = ("os.system",)
    ext: str = ".pkl"
    member: str = ""
    setup: str = ""
    isolate: bool = False
    bypass: str | None = None
    notes: str = ""


@dataclass(frozen=True)
class Sample:
    """A built sample on disk."""

    spec: Spec
    path: Path
    canary: Path

    @property
    def name(self) -> str:
        """Sample name."""
        return self.spec.name

    def canary_fired(self) -> bool:
        """True when the canary (or ``canary.<suffix>``) exists."""
        if os.path.lexists(self.canary):
            return True
        prefix = self.canary.name + "."
        return any(p.name.startswith(prefix) for p in self.canary.parent.iterdir())

    def clear_canary(self) -> None:
        """Remove the canary (after a proof run), so scan tests can check it stays absent."""
        for p in self.canary.parent.iterdir():
            if p.name == self.canary.name or p.name.startswith(self.canary.name + "."):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()


@dataclass
class Registry:
    """All malicious-sample specs, by name."""

    specs: dict[str, Spec] = field(default_factory=dict)

    def add(self, spec: Spec) -> Spec:
        """Register a spec (names are unique)."""
        assert spec.name not in self.specs, f"duplicate sample name {spec.name}"
        assert spec.loader in LOADERS, spec.loader
        self.specs[spec.name] = spec
        return spec


registry = Registry()


def add(name: str, family: str, build: Callable[[Ctx], bytes], **kw: object) -> Spec:
    """Register a malicious sample generator."""
    return registry.add(Spec(name, family, build, **kw))  # type: ignore[arg-type]


def all_specs() -> list[Spec]:
    """Every malicious-sample spec (importing the generator modules registers them)."""
    from tests.corpus import containers, libraries, pickles  # noqa: F401  (registration by import)

    return list(registry.specs.values())


def build_corpus(root: Path) -> list[Sample]:
    """Generate every registered malicious sample into ``root/malicious``; return them."""
    all_specs()
    (root / "canaries").mkdir(parents=True, exist_ok=True)
    out_dir = root / "malicious"
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for spec in registry.specs.values():
        ctx = Ctx(root, spec.name)
        path = out_dir / f"{spec.name}{spec.ext}"
        path.write_bytes(spec.build(ctx))
        samples.append(Sample(spec, path, Path(ctx.canary)))
    return samples
