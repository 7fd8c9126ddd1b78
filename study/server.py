"""``study server``: a real ``mlflow server`` on 127.0.0.1, SQLite by default, any SQLAlchemy URI
(PostgreSQL for a team: ``postgresql://USER@HOST:PORT/DB``, with ``regstudy[postgres]``).

Workers on other nodes log to it over HTTP (``study sweep --tracking-uri
http://HOST:PORT``); artifacts are proxied through it (``--serve-artifacts``),
so workers need no shared filesystem for them.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from .spec import SpecError, _absolute_uri

POSTGRES_EXTRA = "pip install 'regstudy[postgres]'"


def server_command(
    backend_store_uri: str, artifacts: str, host: str, port: int, workers: int | None = None
) -> list[str]:
    """``mlflow server``'s command line: the store as ``store_uri`` gives it, artifacts absolute."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        store_uri(backend_store_uri),
        "--artifacts-destination",
        str(Path(artifacts).resolve()) if "://" not in artifacts else artifacts,
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
    ]
    return [*command, "--workers", str(workers)] if workers else command


def store_uri(backend_store_uri: str) -> str:
    """The store URI for MLflow: a relative SQLite path made absolute; ``postgresql://`` with a
    driver installed here (SQLAlchemy 2.1 defaults to psycopg 3, ``regstudy[postgres]`` brings
    psycopg2), or a one-line error naming the install instead of MLflow's traceback."""
    scheme, _, rest = backend_store_uri.partition("://")
    dialect, _, driver = scheme.lower().partition("+")
    if dialect != "postgresql":
        return _absolute_uri(backend_store_uri)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = f"--backend-store-uri {hide_password(backend_store_uri)}"
    try:
        default = make_url(backend_store_uri).get_dialect().driver
        for name in [driver] if driver else [default, "psycopg2"]:
            try:
                make_url(f"postgresql+{name}://").get_dialect().import_dbapi()
            except ImportError:
                continue
            return backend_store_uri if name in (driver, default) else f"{dialect}+{name}://{rest}"
    except (ArgumentError, ValueError) as err:
        raise SpecError(f"{shown}: not a usable SQLAlchemy URL ({err})") from None
    fix = POSTGRES_EXTRA if driver in ("", "psycopg2") else f"pip install {driver}"
    raise SpecError(f"{shown}: no PostgreSQL driver ({driver or 'psycopg2'}) installed here: {fix}")


def hide_password(uri: str) -> str:
    """``postgresql://me:secret@host/db`` -> ``postgresql://me:***@host/db``, for printed lines."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", uri)


def serve(
    backend_store_uri: str,
    artifacts: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int | None = None,
) -> int:
    """Become the MLflow server (``exec``) so signals reach it directly; returns only on failure."""
    command = server_command(backend_store_uri, artifacts, host, port, workers)
    store = hide_password(command[5])
    print(f"MLflow server on http://{host}:{port}  (store {store}, artifacts {command[7]})")
    print(
        f"log sweeps to it with: study sweep SPEC --tracking-uri http://{host}:{port}", flush=True
    )
    os.execv(command[0], command)
    return 1
