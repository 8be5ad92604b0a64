"""What every route needs: the service's parts (settings, database, storage) and who is calling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from modelshield.service.auth import Principal, authenticate, bearer
from modelshield.service.db import Database
from modelshield.service.errors import unauthorized
from modelshield.service.settings import Settings
from modelshield.service.storage import Storage


@dataclass(frozen=True, slots=True)
class Services:
    """The parts of a running service, shared by all requests."""

    settings: Settings
    db: Database
    storage: Storage
    expected_workers: int


def services(request: Request) -> Services:
    """The running service's parts."""
    found: Services = request.app.state.services
    return found


def optional_principal(request: Request) -> Principal | None:
    """The caller of a bearer token; None without one; 401 for an unknown or revoked token."""
    value = bearer(request.headers.get("authorization"))
    if value is None:
        return None
    with services(request).db.read() as session:
        found = authenticate(session, value)
    if found is None:
        raise unauthorized("unknown or revoked token")
    return found


def principal(request: Request) -> Principal:
    """The caller; 401 when anonymous."""
    found = optional_principal(request)
    if found is None:
        raise unauthorized()
    return found


Caller = Annotated[Principal, Depends(principal)]
Parts = Annotated[Services, Depends(services)]
