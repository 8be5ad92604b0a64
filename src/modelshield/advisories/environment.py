"""The model loaders installed in the current Python environment (metadata only, no imports)."""

from __future__ import annotations

from dataclasses import dataclass

from modelshield.advisories.db import normalise


@dataclass(frozen=True, slots=True)
class Environment:
    """Installed versions of model loaders, by normalised package name, and where they were read."""

    versions: dict[str, str]
    origin: str = "current Python environment"

    def version(self, package: str) -> str | None:
        """Installed version of ``package`` or None."""
        return self.versions.get(normalise(package))

    def to_dict(self) -> dict[str, object]:
        """JSON form for reports."""
        return {"origin": self.origin, "packages": dict(sorted(self.versions.items()))}


def installed_version(package: str) -> str | None:
    """Version of an installed distribution from its metadata (never imports it)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def current_environment(packages: frozenset[str] | None = None) -> Environment:
    """Read the installed versions of the tracked loaders (tensorflow-cpu also counts as tensorflow)."""
    from importlib import metadata

    from modelshield.advisories.osv import TRACKED_PACKAGES

    packages = TRACKED_PACKAGES if packages is None else packages
    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = normalise(name)
        if key in packages and key not in versions:
            versions[key] = dist.version
    return Environment(versions)


def environment_from_pairs(pairs: dict[str, str], origin: str = "given") -> Environment:
    """An environment from explicit ``package -> version`` pairs (tests, remote consumers)."""
    return Environment({normalise(k): v for k, v in pairs.items()}, origin)
