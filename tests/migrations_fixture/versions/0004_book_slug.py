"""Give books a slug, filled from the title (a data migration)."""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade():
    op.add_column("books", sa.Column("slug", sa.String(200), nullable=True))
    op.execute("UPDATE books SET slug = lower(title)")


def downgrade():
    op.drop_column("books", "slug")
