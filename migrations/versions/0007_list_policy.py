"""Who may post to a distribution list; limits on a customer's external list members

Every list gets `post_policy`: `anyone`, `customer` (only the customer's own
mailboxes, authenticated) or `members` (only the list's members). Lists that
exist when this runs get `anyone`, exactly what they did before: the
migration does not change live mail flow. New lists default to `customer`
(the model's default); their owners open them up when they need to.

Customers get two nullable overrides of the limits on external list members
(per list and in all); NULL means the configured default
(LIST_EXTERNAL_PER_LIST, LIST_EXTERNAL_PER_CUSTOMER).

Two new views for Postfix (docs/mailserver.md): `mail_lists` (each list's
address and post_policy, so `check_recipient_access` sends restricted lists to
the list-policy service) and `mail_list_senders` (who may post to each
restricted list). The existing views are not touched.

Revision ID: 0007_list_policy
Revises: 0006_capacity_requests
Create Date: 2026-12-01 15:30:00

"""
from alembic import op

revision = "0007_list_policy"
down_revision = "0006_capacity_requests"
branch_labels = None
depends_on = None

# One row per list on an active domain: Postfix asks it for every recipient.
MAIL_LISTS = """
CREATE VIEW mail_lists AS
SELECT l.address AS address, l.post_policy AS post_policy
FROM distribution_lists l
JOIN domains ld ON ld.id = l.domain_id
WHERE ld.state = 'active'
"""

# Who may post to a restricted list. `authenticated` = 1: the sender is one of
# our mailboxes and must have logged in (SMTP AUTH) as `sender`, so a forged
# MAIL FROM from outside does not pass; 0: an external member, recognised by
# the envelope sender. A `customer` list admits every active mailbox of the
# list's customer; a `members` list its active member mailboxes and external
# members. `anyone` lists have no rows (the policy service is not asked).
MAIL_LIST_SENDERS = """
CREATE VIEW mail_list_senders AS
SELECT l.address AS list, m.address AS sender, 1 AS authenticated
FROM distribution_lists l
JOIN domains ld ON ld.id = l.domain_id
JOIN mailboxes m ON m.customer_id = l.customer_id
JOIN domains md ON md.id = m.domain_id
WHERE l.post_policy = 'customer' AND m.status = 'active' AND ld.state = 'active' AND md.state = 'active'
UNION ALL
SELECT l.address, m.address, 1
FROM distribution_lists l
JOIN domains ld ON ld.id = l.domain_id
JOIN list_members lm ON lm.list_id = l.id
JOIN mailboxes m ON m.id = lm.mailbox_id
JOIN domains md ON md.id = m.domain_id
WHERE l.post_policy = 'members' AND m.status = 'active' AND ld.state = 'active' AND md.state = 'active'
UNION ALL
SELECT l.address, lm.external_address, 0
FROM distribution_lists l
JOIN domains ld ON ld.id = l.domain_id
JOIN list_members lm ON lm.list_id = l.id
WHERE l.post_policy = 'members' AND lm.external_address IS NOT NULL AND ld.state = 'active'
"""

NEW_VIEWS = ("mail_list_senders", "mail_lists")

# Plain ALTER TABLE ADD/DROP COLUMN, the same SQL on both backends: no table rebuild,
# so on SQLite no view has to be dropped and no ON DELETE CASCADE fires (a batch
# rebuild drops the old table, which with foreign keys on deletes the rows that
# depend on it).
ADD_COLUMNS = (
    "ALTER TABLE distribution_lists ADD COLUMN post_policy VARCHAR(16) DEFAULT 'customer' NOT NULL "
    "CONSTRAINT ck_distribution_lists_post_policy CHECK (post_policy IN ('anyone', 'customer', 'members'))",
    "ALTER TABLE customers ADD COLUMN list_external_per_list INTEGER "
    "CONSTRAINT ck_customers_list_external_per_list CHECK (list_external_per_list >= 0)",
    "ALTER TABLE customers ADD COLUMN list_external_per_customer INTEGER "
    "CONSTRAINT ck_customers_list_external_per_customer CHECK (list_external_per_customer >= 0)",
)


def upgrade():
    for sql in ADD_COLUMNS:
        op.execute(sql)
    # Lists made before this revision keep taking everyone's mail, as they did.
    op.execute("UPDATE distribution_lists SET post_policy = 'anyone'")
    op.execute(MAIL_LISTS)
    op.execute(MAIL_LIST_SENDERS)


def downgrade():
    for name in NEW_VIEWS:
        op.execute(f"DROP VIEW {name}")
    op.execute("ALTER TABLE customers DROP COLUMN list_external_per_customer")
    op.execute("ALTER TABLE customers DROP COLUMN list_external_per_list")
    op.execute("ALTER TABLE distribution_lists DROP COLUMN post_policy")
