"""deploy/postgresql-mail-role.sql on a real PostgreSQL: the mail servers' role reads the mail_* views only.

As in production, the schema belongs to an owner role (migrations run as it) and the
script runs as a superuser through psql.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess

import psycopg
import pytest
from psycopg import sql

from app.extensions import db
from tests.conftest import CI, PG_ADMIN_URL, _pg_available, make_app
from tests.deploy.conftest import DEPLOY, ROOT, tool

SCRIPT = DEPLOY / "postgresql-mail-role.sql"
# Roles are shared by the whole PostgreSQL cluster: names of this checkout and this xdist worker.
_SUFFIX = (
    hashlib.sha1(str(ROOT).encode()).hexdigest()[:8] + "_" + os.environ.get("PYTEST_XDIST_WORKER", "main")
)
OWNER, MAIL, DB_NAME = f"panel_owner_{_SUFFIX}", f"panel_mail_{_SUFFIX}", f"panel_role_test_{_SUFFIX}"


def url_as(user: str, database: str = DB_NAME) -> str:
    return re.sub(r"//[^@/]*@", f"//{user}@", re.sub(r"/[^/]*$", f"/{database}", PG_ADMIN_URL))


def admin(statement: sql.Composable, database: str | None = None) -> None:
    target = url_as_admin(database) if database else PG_ADMIN_URL
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(statement)


def url_as_admin(database: str) -> str:
    return re.sub(r"/[^/]*$", f"/{database}", PG_ADMIN_URL)


def _drop_all() -> None:
    admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
    for role in (MAIL, OWNER):
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                # The database holding its grants is gone; what remains is in this one.
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def panel_db():
    """A database owned by its own role, the schema migrated as that role."""
    problem = _pg_available()
    if problem:
        if CI:
            pytest.fail(f"CI=true: PostgreSQL unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    tool("psql")
    _drop_all()
    admin(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(OWNER)))
    admin(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DB_NAME), sql.Identifier(OWNER)))
    app = make_app(url_as(OWNER))
    with app.app_context():
        db.engine.dispose()
    try:
        yield
    finally:
        _drop_all()


def run_script(password: str | None = None, role: str = MAIL) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PANEL_MAIL_PASSWORD"}
    if password is not None:
        env["PANEL_MAIL_PASSWORD"] = password
    return subprocess.run(
        [tool("psql"), "-X", "-q", "-d", url_as_admin(DB_NAME), "-v", f"mail_role={role}", "-f", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
    )


def as_owner(statement: str) -> None:
    with psycopg.connect(url_as(OWNER), autocommit=True) as conn:
        conn.execute(statement)


def can_read(relation: str) -> bool:
    with psycopg.connect(url_as(MAIL), autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(relation)))
            return True
        except psycopg.errors.InsufficientPrivilege:
            return False


def tables() -> list[str]:
    with psycopg.connect(url_as(OWNER)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return sorted(r[0] for r in rows)


def views() -> list[str]:
    with psycopg.connect(url_as(OWNER)) as conn:
        rows = conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'").fetchall()
    return sorted(r[0] for r in rows)


# The servers' contract (docs/mailserver.md): every view the migrations make for them.
MAIL_VIEWS = [
    "mail_aliases",
    "mail_domains",
    "mail_list_senders",
    "mail_lists",
    "mail_sender_addresses",
    "mail_users",
]


def test_the_mail_role_reads_the_views_and_no_table(panel_db):
    result = run_script(password="Mail-role-pass-1")
    assert result.returncode == 0, result.stderr
    assert views() == MAIL_VIEWS
    assert [view for view in views() if can_read(view)] == MAIL_VIEWS
    assert {
        "mailboxes",
        "users",
        "api_tokens",
        "domains",
        "aliases",
        "distribution_lists",
        "alembic_version",
    } <= set(tables())
    readable = [table for table in tables() if can_read(table)]
    assert readable == []


def test_the_mail_role_cannot_write_or_create(panel_db):
    assert run_script().returncode == 0
    with psycopg.connect(url_as(MAIL), autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        # Without that brake too, the privileges alone refuse every write.
        conn.execute("SET default_transaction_read_only = off")
        for statement in (
            "INSERT INTO mail_domains (domain) VALUES ('rubato.example')",
            "UPDATE mail_domains SET domain = 'rubato.example'",
            "DELETE FROM mail_domains",
            "CREATE TABLE public.mine (x int)",
            "CREATE VIEW public.mine AS SELECT 1",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_mail_role_cannot_create_in_the_schema_even_where_public_may(panel_db):
    """PostgreSQL 14 and older grant CREATE on the public schema to PUBLIC: the script takes it away."""
    admin(sql.SQL("GRANT CREATE ON SCHEMA public TO PUBLIC"), DB_NAME)
    for _ in range(2):  # safe to run twice
        result = run_script()
        assert result.returncode == 0, result.stderr
    with psycopg.connect(url_as(MAIL), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        for statement in ("CREATE TABLE public.mine (x int)", "CREATE TABLE mine (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # The database's owner (the migrations) still creates what an upgrade needs.
    as_owner("CREATE TABLE public.after_the_script (x int)")
    as_owner("DROP TABLE public.after_the_script")


def test_a_new_mail_view_is_granted_when_the_script_runs_again(panel_db):
    """What a migration does (recreate a view, add a new mail_ view): the script run after it restores access."""
    assert run_script().returncode == 0
    as_owner("CREATE VIEW mail_future_lookup AS SELECT address FROM distribution_lists")
    as_owner("CREATE VIEW other_report AS SELECT address FROM mailboxes")
    as_owner("DROP VIEW mail_domains")
    as_owner("CREATE VIEW mail_domains AS SELECT name AS domain FROM domains")
    try:
        assert not can_read("mail_future_lookup") and not can_read("mail_domains")
        second = run_script()
        assert second.returncode == 0, second.stderr
        assert can_read("mail_future_lookup") and can_read("mail_domains")
        assert not can_read("other_report")
    finally:
        as_owner("DROP VIEW mail_future_lookup")
        as_owner("DROP VIEW other_report")


def test_membership_in_the_owner_role_is_taken_away(panel_db):
    assert run_script().returncode == 0
    admin(sql.SQL("GRANT {} TO {}").format(sql.Identifier(OWNER), sql.Identifier(MAIL)))
    with psycopg.connect(url_as(MAIL), autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(OWNER)))  # what the grant lent it
    assert run_script().returncode == 0
    with psycopg.connect(url_as(MAIL), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(OWNER)))
    assert not can_read("mailboxes")


def test_the_password_comes_from_the_environment_and_is_set(panel_db):
    result = run_script(password="Mail-role-pass-2")
    assert result.returncode == 0, result.stderr
    assert "Mail-role-pass-2" not in result.stdout + result.stderr
    with psycopg.connect(PG_ADMIN_URL) as conn:
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (MAIL,)).fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$")
    # Unset: the role keeps its password.
    assert run_script().returncode == 0
    with psycopg.connect(PG_ADMIN_URL) as conn:
        again = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (MAIL,)).fetchone()[0]
    assert again == stored


def test_a_hostile_role_name_is_quoted_not_executed(panel_db):
    hostile = 'x"; DROP TABLE mailboxes; --'
    try:
        result = run_script(role=hostile)
        assert result.returncode == 0, result.stderr
        assert "mailboxes" in tables()
    finally:
        with psycopg.connect(url_as_admin(DB_NAME), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(hostile)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(hostile)))
