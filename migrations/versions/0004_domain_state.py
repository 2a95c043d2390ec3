"""Domain state: a domain a customer adds is pending until proved or approved; views serve active ones only

Domains that exist when this runs were all added before the rule and stay
active. The three mail views keep their names and columns; they now leave
out every address on a pending domain, so Postfix does not treat such a
domain as local and Dovecot lets none of its mailboxes log in.

Revision ID: 0004_domain_state
Revises: 0003_mailbox_usage
Create Date: 2026-12-01 15:20:00

"""
import re

import sqlalchemy as sa
from alembic import op

revision = "0004_domain_state"
down_revision = "0003_mailbox_usage"
branch_labels = None
depends_on = None

MAIL_DOMAINS = """
CREATE VIEW mail_domains AS
SELECT d.name AS domain
FROM domains d
WHERE d.state = 'active'
"""

MAIL_USERS = """
CREATE VIEW mail_users AS
SELECT
    m.address AS address,
    m.local_part AS local_part,
    d.name AS domain,
    m.password_hash AS password,
    d.name || '/' || m.local_part AS home,
    sc.quota_mb AS quota_mb,
    CAST(sc.quota_mb AS BIGINT) * 1048576 AS quota_bytes,
    '*:storage=' || CAST(sc.quota_mb AS VARCHAR(10)) || 'M' AS quota_rule,
    m.status AS status,
    CASE WHEN m.status = 'active' THEN 1 ELSE 0 END AS login_allowed,
    CASE WHEN m.status IN ('active', 'suspended') THEN 1 ELSE 0 END AS accepts_mail
FROM mailboxes m
JOIN domains d ON d.id = m.domain_id
JOIN service_classes sc ON sc.id = m.service_class_id
WHERE d.state = 'active'
"""

# Both ends must be on an active domain: an alias or list on a pending domain
# receives nothing, and a destination mailbox on a pending domain is not one.
MAIL_ALIASES = """
CREATE VIEW mail_aliases AS
SELECT a.address AS address, m.address AS destination, 'alias' AS kind
FROM aliases a
JOIN domains ad ON ad.id = a.domain_id
JOIN mailboxes m ON m.id = a.target_id
JOIN domains md ON md.id = m.domain_id
WHERE m.status <> 'disabled' AND ad.state = 'active' AND md.state = 'active'
UNION ALL
SELECT l.address, m.address, 'list'
FROM distribution_lists l
JOIN domains ld ON ld.id = l.domain_id
JOIN list_members lm ON lm.list_id = l.id
JOIN mailboxes m ON m.id = lm.mailbox_id
JOIN domains md ON md.id = m.domain_id
WHERE m.status <> 'disabled' AND ld.state = 'active' AND md.state = 'active'
UNION ALL
SELECT l.address, lm.external_address, 'list'
FROM distribution_lists l
JOIN domains ld ON ld.id = l.domain_id
JOIN list_members lm ON lm.list_id = l.id
WHERE lm.external_address IS NOT NULL AND ld.state = 'active'
"""

VIEWS = ("mail_aliases", "mail_users", "mail_domains")


def _create(sql: str) -> None:
    # Escaped so that text() reads "*:storage" as SQL, not as a bind parameter.
    op.execute(sa.text(sql.replace(":", "\\:")))


def _drop_views() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")


def upgrade():
    # SQLite's batch mode rebuilds the table, which a view that reads it would block.
    _drop_views()
    with op.batch_alter_table("domains") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("activated_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_domains_activated_by_id_users"), "users", ["activated_by_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_check_constraint(batch.f("ck_domains_state"), "state IN ('pending', 'active')")
    op.execute("UPDATE domains SET activated_at = created_at")
    with op.batch_alter_table("domains") as batch:
        batch.alter_column("state", server_default=None)
    _create(MAIL_DOMAINS)
    _create(MAIL_USERS)
    _create(MAIL_ALIASES)


def downgrade():
    _drop_views()
    with op.batch_alter_table("domains") as batch:
        batch.drop_constraint(batch.f("ck_domains_state"), type_="check")
        batch.drop_constraint(batch.f("fk_domains_activated_by_id_users"), type_="foreignkey")
        batch.drop_column("activated_by_id")
        batch.drop_column("activated_at")
        batch.drop_column("state")
    # The views as 0002 made them: the same SQL without the state conditions.
    for sql in (MAIL_DOMAINS, MAIL_USERS, MAIL_ALIASES):
        _create(re.sub(r"\w+\.state = 'active'", "1 = 1", sql))
