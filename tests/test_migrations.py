"""The migrations build exactly the schema the models describe (`flask db check`), on each backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.extensions import db


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], (
        "models and migrations differ; add a migration (flask db migrate -m ...):\n"
        + "\n".join(map(str, diff))
    )


def test_capacity_migration_merges_duplicate_open_requests(app):
    """Before 0007, asking again made another identical request; the unique index needs them merged."""
    import sqlalchemy as sa
    from flask_migrate import downgrade, upgrade

    from app.models import CapacityRequest

    # Dropping a table waits for every open transaction that read it or a table it refers to
    # (customers, users): this test's own session must not hold one.
    db.session.remove()
    downgrade(revision="0006_capacity_requests-1")
    try:
        with db.engine.begin() as conn:
            customer_id = conn.execute(
                sa.text(
                    "INSERT INTO customers (name, plan, self_service, lock_version, created_at) "
                    "VALUES ('Vecchio', 'contract', true, 0, CURRENT_TIMESTAMP) RETURNING id"
                )
            ).scalar_one()
            bm100, plus = conn.execute(
                sa.text("SELECT id FROM service_classes ORDER BY id LIMIT 2")
            ).scalars()
            rows = [
                (bm100, 1, "", "open", "2026-11-01 10:00:00"),
                (bm100, 1, "Un collega", "open", "2026-11-01 10:00:01"),
                (bm100, 2, "", "open", "2026-11-01 10:00:02"),
                (bm100, 4, "vecchia", "approved", "2026-10-01 10:00:00"),
                (plus, 3, "altra classe", "open", "2026-11-02 10:00:00"),
            ]
            for cls, n, note, status, at in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO capacity_requests (customer_id, service_class_id, extra_accounts, note, status, "
                        "created_at) VALUES (:c, :s, :n, :note, :status, :at)"
                    ),
                    {"c": customer_id, "s": cls, "n": n, "note": note, "status": status, "at": at},
                )
    finally:
        upgrade()
    got = db.session.execute(
        sa.select(
            CapacityRequest.service_class_id,
            CapacityRequest.extra_accounts,
            CapacityRequest.note,
            CapacityRequest.status,
            CapacityRequest.granted_accounts,
        ).order_by(CapacityRequest.created_at)
    ).all()
    assert got == [
        (bm100, 4, "vecchia", "approved", 4),
        (bm100, 2, "Un collega", "open", None),
        (plus, 3, "altra classe", "open", None),
    ]


def test_upgrading_keeps_every_row_of_an_existing_database(backend, tmp_path):
    """A migration that rebuilds a table on SQLite (batch mode) must not fire ON DELETE CASCADE:
    the mailboxes, aliases, lists and tokens made before 0004 are all there after the upgrade."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app import create_app
    from tests.conftest import TEST_CONFIG
    from tests.dbstate import fresh_database

    inserts = [
        "INSERT INTO customers (id, name, plan, self_service, lock_version, created_at) "
        "VALUES (1, 'Rossi', 'payg', false, 0, CURRENT_TIMESTAMP)",
        "INSERT INTO domains (id, customer_id, name, created_at) VALUES (1, 1, 'rossi.example', CURRENT_TIMESTAMP)",
        "INSERT INTO users (id, email, password_hash, role, customer_id, locale, active, created_at) "
        "VALUES (1, 'it@rossi.example', 'x', 'customer_admin', 1, 'it', true, CURRENT_TIMESTAMP)",
        "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, created_at) "
        "VALUES (1, 1, 'cli', 'cp_abc', 'h', CURRENT_TIMESTAMP)",
        "INSERT INTO mailboxes (id, customer_id, domain_id, local_part, address, display_name, password_hash, "
        "service_class_id, status, created_at, updated_at) VALUES (1, 1, 1, 'anna', 'anna@rossi.example', 'Anna', "
        "'x', 1, 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO aliases (id, customer_id, domain_id, local_part, address, target_id, created_at) "
        "VALUES (1, 1, 1, 'info', 'info@rossi.example', 1, CURRENT_TIMESTAMP)",
        "INSERT INTO distribution_lists (id, customer_id, domain_id, local_part, address, description, created_at) "
        "VALUES (1, 1, 1, 'tutti', 'tutti@rossi.example', '', CURRENT_TIMESTAMP)",
        "INSERT INTO list_members (id, list_id, mailbox_id) VALUES (1, 1, 1)",
    ]
    tables = ["customers", "domains", "users", "api_tokens", "mailboxes", "aliases", "distribution_lists"]
    with fresh_database(backend, tmp_path) as url:
        old = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": url})
        with old.app_context():
            upgrade(revision="0003_mailbox_usage")
            with db.engine.begin() as conn:
                for sql in inserts:
                    conn.execute(sa.text(sql))
            upgrade()
            with db.engine.connect() as conn:
                counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}
                counts["list_members"] = conn.execute(
                    sa.text("SELECT count(*) FROM list_members")
                ).scalar_one()
                served = conn.execute(sa.text("SELECT address FROM mail_users")).scalars().all()
            db.session.remove()
            db.engine.dispose()
    assert counts == dict.fromkeys([*tables, "list_members"], 1)
    assert served == ["anna@rossi.example"]  # a domain that was there before stays active


def test_0021_fills_the_unicode_form_of_existing_domains_and_goes_back(backend, tmp_path):
    """0021 gives the domains already there their Unicode form (IDNs only) and the view both forms
    of their addresses; its downgrade removes the view and the column and keeps every row."""
    import sqlalchemy as sa
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from tests.conftest import TEST_CONFIG
    from tests.dbstate import fresh_database

    inserts = [
        "INSERT INTO customers (id, name, plan, self_service, lock_version, created_at) "
        "VALUES (1, 'Caffè', 'payg', false, 0, CURRENT_TIMESTAMP)",
        "INSERT INTO domains (id, customer_id, name, state, created_at) VALUES "
        "(1, 1, 'xn--caff-8oa.example', 'active', CURRENT_TIMESTAMP), "
        "(2, 1, 'rossi.example', 'active', CURRENT_TIMESTAMP), "
        "(3, 1, 'xn--perch-fsa.example', 'pending', CURRENT_TIMESTAMP)",
        "INSERT INTO mailboxes (id, customer_id, domain_id, local_part, address, display_name, password_hash, "
        "service_class_id, status, created_at, updated_at) VALUES "
        "(1, 1, 1, 'anna', 'anna@xn--caff-8oa.example', 'Anna', 'x', 1, 'active', CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP), "
        "(2, 1, 2, 'mario', 'mario@rossi.example', 'Mario', 'x', 1, 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO aliases (id, customer_id, domain_id, local_part, address, target_id, created_at) "
        "VALUES (1, 1, 1, 'info', 'info@xn--caff-8oa.example', 1, CURRENT_TIMESTAMP)",
        "INSERT INTO distribution_lists (id, customer_id, domain_id, local_part, address, description, created_at) "
        "VALUES (1, 1, 1, 'vuota', 'vuota@xn--caff-8oa.example', '', CURRENT_TIMESTAMP)",
    ]

    def read(conn, sql):
        return sorted(tuple(r) for r in conn.execute(sa.text(sql)))

    with fresh_database(backend, tmp_path) as url:
        old = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": url})
        with old.app_context():
            upgrade(revision="0020_dkim_keys")
            with db.engine.begin() as conn:
                for sql in inserts:
                    conn.execute(sa.text(sql))
            upgrade(revision="0021_sender_addresses")
            with db.engine.connect() as conn:
                names = read(conn, "SELECT name, unicode_name FROM domains")
                senders = read(conn, "SELECT address, kind FROM mail_sender_addresses")
            downgrade(revision="0020_dkim_keys")
            with db.engine.connect() as conn:
                columns = {c["name"] for c in sa.inspect(conn).get_columns("domains")}
                views = set(sa.inspect(conn).get_view_names())
                after = read(conn, "SELECT name FROM domains")
                addresses = read(conn, "SELECT address FROM mailboxes")
            upgrade()
            with db.engine.connect() as conn:
                again = read(conn, "SELECT address, kind FROM mail_sender_addresses")
            db.session.remove()
            db.engine.dispose()
    assert names == [
        ("rossi.example", None),
        ("xn--caff-8oa.example", "caffè.example"),
        ("xn--perch-fsa.example", "perché.example"),
    ]
    assert senders == sorted(
        [
            ("anna@xn--caff-8oa.example", "mailbox"),
            ("anna@caffè.example", "mailbox"),
            ("info@xn--caff-8oa.example", "alias"),
            ("info@caffè.example", "alias"),
            ("vuota@xn--caff-8oa.example", "list"),
            ("vuota@caffè.example", "list"),
            ("mario@rossi.example", "mailbox"),
        ]
    )
    assert "unicode_name" not in columns and "mail_sender_addresses" not in views
    assert "mail_users" in views
    assert after == [("rossi.example",), ("xn--caff-8oa.example",), ("xn--perch-fsa.example",)]
    assert addresses == [("anna@xn--caff-8oa.example",), ("mario@rossi.example",)]
    assert again == senders
