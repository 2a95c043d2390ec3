"""Migration 0007_list_policy: lists that exist keep taking everyone's mail (no change to live mail
flow); the views the servers read survive the table rebuild; downgrade restores the old shape."""

from __future__ import annotations

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app import create_app
from app.extensions import db
from tests.conftest import TEST_CONFIG
from tests.dbstate import fresh_database

REVISION = "0007_list_policy"


def test_existing_lists_stay_open_and_the_views_survive(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            from alembic.script import ScriptDirectory

            before = (
                ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
                .get_revision(REVISION)
                .down_revision
            )
            upgrade(revision=before)
            run = lambda sql: db.session.execute(sa.text(sql))  # noqa: E731
            run(
                "INSERT INTO customers (id, name, plan, self_service, lock_version, created_at) "
                "VALUES (1, 'Rossi', 'payg', false, 0, CURRENT_TIMESTAMP)"
            )
            run(
                "INSERT INTO domains (id, customer_id, name, state, created_at) "
                "VALUES (1, 1, 'rossi.example', 'active', CURRENT_TIMESTAMP)"
            )
            run(
                "INSERT INTO distribution_lists (id, customer_id, domain_id, local_part, address, description, "
                "created_at) VALUES (1, 1, 1, 'tutti', 'tutti@rossi.example', '', CURRENT_TIMESTAMP)"
            )
            run(
                "INSERT INTO list_members (id, list_id, external_address) VALUES (1, 1, 'socio@fuori.example')"
            )
            db.session.commit()

            upgrade()
            assert run("SELECT post_policy FROM distribution_lists").scalar_one() == "anyone"
            assert run("SELECT address, post_policy FROM mail_lists").all() == [
                ("tutti@rossi.example", "anyone")
            ]
            assert run("SELECT address, destination FROM mail_aliases").all() == [
                ("tutti@rossi.example", "socio@fuori.example")
            ]
            assert run("SELECT list_external_per_list FROM customers").scalar_one() is None
            db.session.commit()

            downgrade(revision=before)
            assert run("SELECT address, destination FROM mail_aliases").all() == [
                ("tutti@rossi.example", "socio@fuori.example")
            ]
            columns = {c["name"] for c in sa.inspect(db.engine).get_columns("distribution_lists")}
            assert "post_policy" not in columns
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
