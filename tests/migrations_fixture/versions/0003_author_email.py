"""Give authors an email address."""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    op.add_column("authors", sa.Column("email", sa.String(255), nullable=True))


def downgrade():
    op.drop_column("authors", "email")
