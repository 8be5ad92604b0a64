"""The catalog service: ``modelshield serve`` (web app + API + UI), ``modelshield worker`` (scan queue).

The service adds state, scheduling, identity and a UI around the engine; every analysis runs through
:func:`modelshield.scan.run_pipeline`, never a second copy of it. Layers, lowest first (imports point
down only)::

    settings, errors            configuration and the service's error type (standard library only)
    models, db                  SQLAlchemy ORM tables, engines/sessions, Alembic migrations (migrations/)
    storage, keys, audit        content-addressed blobs, the signing key, the append-only audit log
    auth, queue, webhooks       tokens/sessions/roles, the job queue (leases), signed alert deliveries
    catalog, policy_store       registration, model status, waivers, the service's policy
    scanning, verification      a scan job through the pipeline; re-hashing stored files (drift)
    scheduler, worker           continuous verification; the worker process loop
    badges, views, uploads      SVG/JSON badges, JSON views of rows, the streaming multipart parser
    deps -> api, ui -> app      FastAPI dependencies, routes, the application
    server                      ``serve``: migrations, key, workers as subprocesses, uvicorn

Nothing here is imported by ``modelshield --help`` or ``modelshield scan``: the CLI imports it lazily.
"""
