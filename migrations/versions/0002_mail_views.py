"""Mail views: the contract with Dovecot and Postfix (mail_domains, mail_users, mail_aliases)

The mail servers read only these views, never the tables: tables may change
in later revisions, the views keep their names, columns and meaning
(docs/mailserver.md). The SQL is the same on SQLite and PostgreSQL, so one
Dovecot/Postfix query works on both.

Revision ID: 0002_mail_views
Revises: 0001_core
Create Date: 2026-11-28 02:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = "0002_mail_views"
down_revision = "0001_core"
branch_labels = None
depends_on = None

# Every domain of a customer receives mail: an unknown user on it is rejected,
# never relayed elsewhere.
MAIL_DOMAINS = """
CREATE VIEW mail_domains AS
SELECT d.name AS domain
FROM domains d
"""

# One row per mailbox. quota_bytes is computed in BIGINT: 25.000 MB in bytes
# does not fit PostgreSQL's 32-bit integer.
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
"""

# One row per destination. A disabled mailbox is left out as a destination:
# its mail is refused, so an alias of it is refused at RCPT too, and a list
# skips it. External list members are delivered by Postfix's relay.
MAIL_ALIASES = """
CREATE VIEW mail_aliases AS
SELECT a.address AS address, m.address AS destination, 'alias' AS kind
FROM aliases a
JOIN mailboxes m ON m.id = a.target_id
WHERE m.status <> 'disabled'
UNION ALL
SELECT l.address, m.address, 'list'
FROM distribution_lists l
JOIN list_members lm ON lm.list_id = l.id
JOIN mailboxes m ON m.id = lm.mailbox_id
WHERE m.status <> 'disabled'
UNION ALL
SELECT l.address, lm.external_address, 'list'
FROM distribution_lists l
JOIN list_members lm ON lm.list_id = l.id
WHERE lm.external_address IS NOT NULL
"""


def _create(sql: str) -> None:
    # Escaped so that text() reads "*:storage" as SQL, not as a bind parameter.
    op.execute(sa.text(sql.replace(":", "\\:")))


def upgrade():
    _create(MAIL_DOMAINS)
    _create(MAIL_USERS)
    _create(MAIL_ALIASES)


def downgrade():
    op.execute("DROP VIEW mail_aliases")
    op.execute("DROP VIEW mail_users")
    op.execute("DROP VIEW mail_domains")
