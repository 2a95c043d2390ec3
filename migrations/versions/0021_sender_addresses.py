"""Every address of ours a stranger may not send as: the view `mail_sender_addresses`, and
`domains.unicode_name`, the Unicode form of an IDN's name

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

An IDN is stored in its ASCII form (`xn--caff-8oa.example`), but a client speaking
SMTPUTF8 may write the same address in its Unicode form (`anna@caffè.example`), and SQL
cannot decode punycode: `domains.unicode_name` holds that form, lower case (Python's
`idna`, as the panel shows it), NULL for a name that has no other form; the panel sets
it whenever a domain's name is set, this upgrade for the domains already there. The
view has one more row per address of such a domain: `local@<unicode form>`
(`ix_aliases_domain_id` and `ix_distribution_lists_domain_id` let the map's lookup
read only those domains' addresses).

Run deploy/postgresql-mail-role.sql after this upgrade: the
new view needs its grant. A later migration that rebuilds mailboxes, aliases,
distribution_lists or domains in SQLite's batch mode drops this view first and
makes it again after, like the others (0004_domain_state).

Revision ID: 0021_sender_addresses
Revises: 0020_dkim_keys
"""

import idna
import sqlalchemy as sa
from alembic import op

revision = "0021_sender_addresses"
down_revision = "0020_dkim_keys"
branch_labels = None
depends_on = None

# The same SQL on SQLite and PostgreSQL. Addresses and local parts are stored lower case,
# ASCII domain; unicode_name is lower case too. kind: 'mailbox', 'alias' or 'list' (what
# the address is, for people reading it). The Unicode rows join from the few domains that
# have such a name, and have the ASCII rows' type: PostgreSQL then looks an address up in
# each branch (the address indexes; only the IDNs' addresses for the Unicode rows) rather
# than reading the whole view at every lookup.
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
UNION ALL
SELECT CAST(m.local_part || '@' || d.unicode_name AS VARCHAR(320)), 'mailbox'
FROM domains d
JOIN mailboxes m ON m.domain_id = d.id
WHERE d.state = 'active' AND d.unicode_name IS NOT NULL
UNION ALL
SELECT CAST(a.local_part || '@' || d.unicode_name AS VARCHAR(320)), 'alias'
FROM domains d
JOIN aliases a ON a.domain_id = d.id
WHERE d.state = 'active' AND d.unicode_name IS NOT NULL
UNION ALL
SELECT CAST(l.local_part || '@' || d.unicode_name AS VARCHAR(320)), 'list'
FROM domains d
JOIN distribution_lists l ON l.domain_id = d.id
WHERE d.state = 'active' AND d.unicode_name IS NOT NULL
"""


def unicode_form(ascii_name: str) -> str | None:
    # What app/models/mail.py unicode_form gives today (a migration keeps its own copy).
    try:
        shown = idna.decode(ascii_name).lower()
    except (idna.IDNAError, UnicodeError):
        return None
    return None if shown == ascii_name else shown


def upgrade():
    op.add_column("domains", sa.Column("unicode_name", sa.String(length=253), nullable=True))
    conn = op.get_bind()
    domains = sa.table("domains", sa.column("id", sa.Integer), sa.column("name", sa.String))
    domains_unicode = sa.table("domains", sa.column("id", sa.Integer), sa.column("unicode_name", sa.String))
    # Only names that carry punycode can have another form.
    for domain_id, name in conn.execute(
        sa.select(domains.c.id, domains.c.name).where(domains.c.name.like("%xn--%"))
    ).all():
        shown = unicode_form(name)
        if shown is not None:
            conn.execute(
                sa.update(domains_unicode).where(domains_unicode.c.id == domain_id).values(unicode_name=shown)
            )
    # The Unicode rows start from a domain: its aliases and lists by index, not by a scan.
    op.create_index(op.f("ix_aliases_domain_id"), "aliases", ["domain_id"])
    op.create_index(op.f("ix_distribution_lists_domain_id"), "distribution_lists", ["domain_id"])
    op.execute(MAIL_SENDER_ADDRESSES)


def downgrade():
    # The view reads the column: it goes first (PostgreSQL and SQLite both refuse otherwise).
    op.execute("DROP VIEW mail_sender_addresses")
    op.drop_index(op.f("ix_distribution_lists_domain_id"), table_name="distribution_lists")
    op.drop_index(op.f("ix_aliases_domain_id"), table_name="aliases")
    op.execute("ALTER TABLE domains DROP COLUMN unicode_name")
