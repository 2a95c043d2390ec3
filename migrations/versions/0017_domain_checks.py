"""Domain activation by DNS: each domain's ownership proof, and what its MX check last saw

`domains.verification_token`: the token of the TXT record that proves the domain is the
customer's (a new one each time a domain is claimed); `verified_at` and `verified_by`
(txt, mx or staff): when and how the domain was proved. Domains already active count as
approved by staff.

`domain_checks`: one row per domain, the MX check's verdict (missing, wrong, published,
propagated), when each state was first seen, the TTLs and answers of the last check, when
the next check is due, the warning sent when an active domain's MX moved away, and the
staff's reason for letting a migration start before the MX has propagated.

`ix_audit_events_target`: who held a domain name before (the MX proof counts only for a name
no other customer held here).

Revision ID: 0017_domain_checks
Revises: 0016_imports
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0017_domain_checks"
down_revision = "0016_imports"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("domains", sa.Column("verification_token", sa.String(length=32), nullable=True))
    op.add_column("domains", sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("domains", sa.Column("verified_by", sa.String(length=8), nullable=True))
    conn = op.get_bind()
    domains = sa.table(
        "domains",
        sa.column("id", sa.Integer),
        sa.column("state", sa.String),
        sa.column("activated_at", sa.DateTime(timezone=True)),
        sa.column("verification_token", sa.String),
        sa.column("verified_at", sa.DateTime(timezone=True)),
        sa.column("verified_by", sa.String),
    )
    for domain_id, state, activated_at in conn.execute(
        sa.select(domains.c.id, domains.c.state, domains.c.activated_at)
    ).all():
        values = {"verification_token": secrets.token_hex(16)}
        if state == "active":
            values.update(verified_at=activated_at, verified_by="staff")
        conn.execute(sa.update(domains).where(domains.c.id == domain_id).values(**values))
    op.create_table(
        "domain_checks",
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("first_seen", sa.JSON(), nullable=False),
        sa.Column("old_ttl", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("migration_override", sa.Text(), nullable=True),
        sa.Column("migration_override_by", sa.String(length=254), nullable=True),
        sa.Column("migration_override_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "verdict IS NULL OR verdict IN ('missing', 'wrong', 'published', 'propagated')",
            name=op.f("ck_domain_checks_verdict"),
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"], name=op.f("fk_domain_checks_domain_id_domains"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("domain_id", name=op.f("pk_domain_checks")),
    )
    op.create_index(op.f("ix_domain_checks_next_check_at"), "domain_checks", ["next_check_at"])
    # Who held a domain name before: an MX already pointing to us proves only a name nobody else held.
    op.create_index("ix_audit_events_target", "audit_events", ["target"])


def downgrade():
    op.drop_index("ix_audit_events_target", table_name="audit_events")
    op.drop_index(op.f("ix_domain_checks_next_check_at"), table_name="domain_checks")
    op.drop_table("domain_checks")
    for column in ("verified_by", "verified_at", "verification_token"):
        op.execute(f"ALTER TABLE domains DROP COLUMN {column}")
