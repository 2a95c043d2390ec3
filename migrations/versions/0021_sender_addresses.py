"""Every address of ours a stranger may not send as: the view `mail_sender_addresses`

Postfix refuses on port 25 (no login there) an envelope sender that is one of
our addresses (`our_senders.cf`, docs/mailserver.md). `mail_users` and
`mail_aliases` do not list all of them: `mail_aliases` has one row per
destination, so a list without members (or whose members are all disabled
mailboxes) and an alias of a disabled mailbox are absent from it, and a
stranger could use those addresses as sender. The servers' database role reads
only the `mail_*` views, never the tables, so the map needs a view of its own.

One row per mailbox, alias and distribution list on an **active** domain,
whatever the state of the mailbox (active, suspended, disabled, its customer on
hold or not), of the alias's target or of the list's members. A pending domain
is not ours yet (anyone may claim any name): its addresses are not refused,
or a customer could block a stranger's domain from writing to us by claiming it.

No table changes. Run deploy/postgresql-mail-role.sql after this upgrade: the
new view needs its grant. A later migration that rebuilds mailboxes, aliases,
distribution_lists or domains in SQLite's batch mode drops this view first and
makes it again after, like the others (0004_domain_state).

Revision ID: 0021_sender_addresses
Revises: 0020_dkim_keys
"""

from alembic import op

revision = "0021_sender_addresses"
down_revision = "0020_dkim_keys"
branch_labels = None
depends_on = None

# The same SQL on SQLite and PostgreSQL. Addresses are stored lower case, ASCII domain.
# kind: 'mailbox', 'alias' or 'list' (what the address is, for people reading it).
MAIL_SENDER_ADDRESSES = """
CREATE VIEW mail_sender_addresses AS
SELECT m.address AS address, 'mailbox' AS kind
FROM mailboxes m
JOIN domains d ON d.id = m.domain_id
WHERE d.state = 'active'
UNION ALL
SELECT a.address, 'alias'
FROM aliases a
JOIN domains d ON d.id = a.domain_id
WHERE d.state = 'active'
UNION ALL
SELECT l.address, 'list'
FROM distribution_lists l
JOIN domains d ON d.id = l.domain_id
WHERE d.state = 'active'
"""


def upgrade():
    op.execute(MAIL_SENDER_ADDRESSES)


def downgrade():
    op.execute("DROP VIEW mail_sender_addresses")
