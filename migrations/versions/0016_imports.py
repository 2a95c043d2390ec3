"""Imports: bulk provisioning from a spreadsheet, its rows and their outcomes

`imports` is one uploaded file: its preview (counts and problems), who applied it,
the job, the outcome and the report; `import_rows` is each thing the file asks for
(a mailbox, an alias, a list, a list member) with its sheet, row and column, the
password sealed until the import ends, and its outcome.

Revision ID: 0016_imports
Revises: 0015_billing_since
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_imports"
down_revision = "0015_billing_since"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        sa.Column("valid_only", sa.Boolean(), nullable=False),
        sa.Column("applied_by", sa.String(length=254), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("report", sa.LargeBinary(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("generated", sa.LargeBinary(), nullable=True),
        sa.Column("generated_count", sa.Integer(), nullable=False),
        sa.Column("generated_taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("generated_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('previewed', 'applying', 'done', 'failed', 'cancelled', 'expired')",
            name=op.f("ck_imports_state"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_imports_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_imports_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_imports_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.create_index("ix_imports_customer_created", ["customer_id", "created_at"], unique=False)
        batch_op.create_index("ix_imports_state_expires", ["state", "expires_at"], unique=False)

    op.create_table(
        "import_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("sheet", sa.String(length=100), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(length=8), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("member", sa.String(length=320), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=True),
        sa.Column("generate", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("op IN ('mailbox', 'alias', 'list', 'member')", name=op.f("ck_import_rows_op")),
        sa.CheckConstraint(
            "outcome IN ('pending', 'created', 'present', 'error', 'skipped')",
            name=op.f("ck_import_rows_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_import_rows_import_id_imports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_rows")),
        sa.UniqueConstraint("import_id", "seq", name="uq_import_rows_seq"),
    )
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_import_rows_work", ["import_id", "op", "outcome", "claimed_by"], unique=False
        )


def downgrade():
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_import_rows_work")

    op.drop_table("import_rows")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_index("ix_imports_state_expires")
        batch_op.drop_index("ix_imports_customer_created")

    op.drop_table("imports")
