"""Customer hold: a customer out of credit is put on hold; no mailbox of it logs in, mail is still kept

`customers.on_hold_since` (NULL: not on hold) and `on_hold_reason` (shown to
staff). The hold is a state of the customer, never written into its mailboxes:
`mail_users` keeps its name and columns and reads it, so a mailbox of a
customer on hold has `login_allowed` = 0 whatever its own status, and
`accepts_mail` as its status says (an active or suspended mailbox keeps
receiving, a disabled one keeps refusing). `status` stays the mailbox's own.
Lifting the hold (setting the column back to NULL) restores exactly what was
there. The other views are unchanged: a mailbox that cannot log in cannot
post to a list either (mail_list_senders needs SMTP AUTH).

Revision ID: 0013_customer_hold
Revises: 0012_outbox
Create Date: 2026-12-01 18:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0013_customer_hold"
down_revision = "0012_outbox"
branch_labels = None
depends_on = None

# mail_users as 0004_domain_state made it, plus the customer's hold in login_allowed.
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
    CASE WHEN m.status = 'active' AND cu.on_hold_since IS NULL THEN 1 ELSE 0 END AS login_allowed,
    CASE WHEN m.status IN ('active', 'suspended') THEN 1 ELSE 0 END AS accepts_mail
FROM mailboxes m
JOIN domains d ON d.id = m.domain_id
JOIN service_classes sc ON sc.id = m.service_class_id
JOIN customers cu ON cu.id = m.customer_id
WHERE d.state = 'active'
"""

# The view before this revision (0004_domain_state), for the downgrade.
PREVIOUS_MAIL_USERS = """
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


def _create(sql: str) -> None:
    # Escaped so that text() reads "*:storage" as SQL, not as a bind parameter.
    op.execute(sa.text(sql.replace(":", "\\:")))


def upgrade():
    # Plain ALTER TABLE ADD COLUMN on both backends (no table rebuild on SQLite).
    op.execute("DROP VIEW mail_users")
    op.add_column("customers", sa.Column("on_hold_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("customers", sa.Column("on_hold_reason", sa.String(length=200), nullable=True))
    _create(MAIL_USERS)


def downgrade():
    # SQLite checks every view after DROP COLUMN: the view that reads the column goes first.
    op.execute("DROP VIEW mail_users")
    op.execute("ALTER TABLE customers DROP COLUMN on_hold_reason")
    op.execute("ALTER TABLE customers DROP COLUMN on_hold_since")
    _create(PREVIOUS_MAIL_USERS)
