"""Test harness: the app on SQLite and on PostgreSQL, schema made by the migrations.

Every test that uses `app` runs once per database backend ([sqlite] and
[postgresql] in the test id). The schema is built once per backend with
`flask db upgrade`; between tests every table but the catalogue is emptied.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db
from tests import factories, twofactor

CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
KEEP_TABLES = {"service_classes", "alembic_version"}

pytest_plugins = ["tests.dnsfixtures"]


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as e:
        return str(e).strip().splitlines()[0]


def _backends() -> list:
    wanted = os.environ.get("TEST_DATABASES", "sqlite,postgresql").split(",")
    params = []
    for name in wanted:
        if name == "postgresql":
            problem = _pg_available()
            if problem and not CI:
                params.append(
                    pytest.param(name, marks=pytest.mark.skip(reason=f"PostgreSQL unreachable: {problem}"))
                )
                continue
        params.append(name)
    return params


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _redis_db() -> int:
    # A Redis database per xdist worker (gw0 13, gw1 14, gw2 15; a run without xdist 12): a test that
    # empties its database never takes another worker's queue with it.
    number = _worker().removeprefix("gw")
    if not number.isdigit():
        return 12
    if int(number) > 2:
        raise pytest.UsageError("at most 3 xdist workers: each needs a Redis database of its own (13-15)")
    return 13 + int(number)


# The Redis the job tests use (TEST_REDIS_URL only for a run of one worker: it is shared as it is).
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{_redis_db()}")


def _pg_database_name() -> str:
    # One database per checkout and per xdist worker, so parallel runs never share tables.
    checkout = hashlib.sha1(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()[:8]
    return f"panel_test_{checkout}_{_worker()}"


def _pg_database_url() -> str:
    name = _pg_database_name()
    # Dropped at the end of the run too; here in case a run was killed before its end.
    _drop_pg_database(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"/[^/]*$", f"/{name}", PG_ADMIN_URL)


def _drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TEST_CONFIG = {
    "ENV_NAME": "testing",
    "TESTING": True,
    "SECRET_KEY": "test-secret",
    # A key for the tests' encrypted secrets only (never a deployment's).
    "DATA_KEYS": "Q9IL1wLWWknW3u9Pp-u-OLKm2JEi3h876rP-pMgR0Gc=",
    "RATELIMIT_ENABLED": False,
    # Cheaper argon2 in tests only; the hash form (and Dovecot's check) is the same.
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_COST": 1024,
    "SERVER_NAME": None,
}


def make_app(database_url: str, **overrides):
    from flask_migrate import upgrade

    app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url, **overrides})
    app.test_client_class = CsrfClient
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(scope="session", params=_backends())
def backend(request) -> str:
    # A test may ask for one backend only (parametrize "backend" indirectly): the same rules hold.
    if request.param == "postgresql" and not CI:
        if "postgresql" not in os.environ.get("TEST_DATABASES", "sqlite,postgresql").split(","):
            pytest.skip("PostgreSQL left out by TEST_DATABASES")
        if problem := _pg_available():
            pytest.skip(f"PostgreSQL unreachable: {problem}")
    return request.param


@pytest.fixture(scope="session")
def database_url(backend, tmp_path_factory):
    if backend != "postgresql":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'panel.sqlite3'}"
        return
    yield _pg_database_url()
    # The end of this process's run (each xdist worker drops its own): leave nothing behind.
    _drop_pg_database(_pg_database_name())


@pytest.fixture(scope="session")
def _app(database_url):
    app = make_app(database_url)
    with app.app_context():
        _empty_tables()  # the first test too starts from empty tables (the migrations seed the prices)
    yield app
    with app.app_context():
        db.engine.dispose()  # its connections closed before the database is dropped


@pytest.fixture
def app(_app):
    with _app.app_context():
        yield _app
        db.session.remove()
        _empty_tables()


def _empty_tables() -> None:
    """Every table a test may write emptied, and on PostgreSQL their id sequences back to 1: each
    test starts as on a new database. DELETE, not TRUNCATE: a TRUNCATE of tables holding a few
    rows took ~330 ms (new files for each table and index), the DELETEs ~15 ms."""
    tables = [t for t in db.metadata.sorted_tables if t.name not in KEEP_TABLES]
    with db.engine.begin() as conn:
        if conn.dialect.name != "postgresql":
            for table in reversed(tables):
                conn.execute(table.delete())
            return
        conn.exec_driver_sql("; ".join(f'DELETE FROM "{t.name}"' for t in reversed(tables)))
        # The sequences of these tables that handed out a value (a rolled-back insert's too).
        conn.execute(
            sa.text(
                "SELECT setval(format('%I.%I', s.schemaname, s.sequencename), 1, false)"
                " FROM pg_sequences s"
                " JOIN pg_namespace n ON n.nspname = s.schemaname"
                " JOIN pg_class seq ON seq.relname = s.sequencename AND seq.relnamespace = n.oid"
                " JOIN pg_depend d ON d.objid = seq.oid AND d.refclassid = 'pg_class'::regclass"
                " JOIN pg_class t ON t.oid = d.refobjid"
                " WHERE s.schemaname = current_schema() AND s.last_value IS NOT NULL"
                " AND t.relname = ANY(:tables)"
            ),
            {"tables": [t.name for t in tables]},
        )


class CsrfClient(FlaskClient):
    """A test client that sends the CSRF token on every unsafe request, as htmx does.

    Pass csrf=False to send a request without it.
    """

    _csrf_token: str | None = None

    def csrf_token(self) -> str:
        if self._csrf_token is None:
            # Its own app context, as every request: a `g` shared with the test would hand back
            # a token cached there instead of putting one in this session.
            with self.application.app_context():
                page = super().open("/login", follow_redirects=True).get_data(as_text=True)
            match = re.search(r'name="csrf-token" content="([^"]+)"', page)
            assert match, "no csrf-token meta tag in the page"
            self._csrf_token = match.group(1)
        return self._csrf_token

    def open(self, *args, csrf: bool = True, **kwargs):
        method = kwargs.get("method", "GET").upper()
        if csrf and method not in {"GET", "HEAD", "OPTIONS"}:
            headers = dict(kwargs.pop("headers", None) or {})
            if "Authorization" not in headers:
                headers.setdefault("X-CSRFToken", self.csrf_token())
            kwargs["headers"] = headers
        # Each request gets its own app context (fresh `g`, its own DB session), as in
        # production; otherwise it would reuse the test's and carry state between requests.
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        # What the test reads next must be what the request wrote, not its own stale copy.
        db.session.expire_all()
        return response


_DKIM_POOL: list = []


@pytest.fixture(autouse=True)
def _dkim_key_pool(request, monkeypatch):
    """Every domain that turns active gets an RSA 2048 key, ~75 ms of CPU each, and almost every
    test activates one: real keys made once per run are handed out again, in the same order in
    every test, so that within a test each key is still a key of its own. Tests marked
    `fresh_dkim_keys` (the keys' own tests) make each key anew, as the panel does."""
    if request.node.get_closest_marker("fresh_dkim_keys"):
        return
    from app.services import dkim

    real, turn = dkim._generate, itertools.count()

    def pooled():
        n = next(turn)
        if n == len(_DKIM_POOL):
            _DKIM_POOL.append(real())
        return _DKIM_POOL[n]

    monkeypatch.setattr(dkim, "_generate", pooled)


@pytest.fixture
def client(app) -> CsrfClient:
    return app.test_client()


@pytest.fixture
def make(app):
    """Factories that build data through the service layer (see tests/factories.py)."""
    return factories


class Auth:
    def __init__(self, client: CsrfClient):
        self.client = client

    def login(self, email: str, password: str = factories.PASSWORD, next: str | None = None):
        """Sign in through the real form; staff (and anyone with the second factor) also type
        the code from their authenticator, set up first for staff who have none yet."""
        user = twofactor.user_by_email(email)
        if user is not None and user.active and user.is_staff and not user.has_totp:
            twofactor.enrol(user)
        query = {"next": next} if next else None
        response = self.client.post("/login", query_string=query, data={"email": email, "password": password})
        self.client._csrf_token = None  # a new session gets a new token
        if response.status_code == 302 and response.headers["Location"].endswith("/login/code"):
            response = self.client.post("/login/code", data={"code": twofactor.next_code(user)})
            self.client._csrf_token = None
        return response

    def logout(self):
        response = self.client.post("/logout")
        self.client._csrf_token = None  # the session ended, and its token with it
        return response


@pytest.fixture
def auth(client) -> Auth:
    return Auth(client)


def pytest_sessionfinish(session, exitstatus):
    """Under CI=true a skipped test is a failure: CI has every service, so nothing may be missing."""
    config = session.config
    if not CI or hasattr(config, "workerinput"):  # xdist workers report to the controller
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write("\n")
        reporter.write_sep("=", f"CI=true: {len(skipped)} skipped test(s) count as failures", red=True)
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reporter.write_line(f"SKIPPED {report.nodeid}: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
