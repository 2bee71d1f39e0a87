"""Create books, each by an author."""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.create_table("books", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("author_id", sa.Integer, sa.ForeignKey("authors.id"),
                              nullable=False),
                    sa.Column("title", sa.String(200), nullable=False))


def downgrade():
    op.drop_table("books")
