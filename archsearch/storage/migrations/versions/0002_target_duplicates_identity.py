"""Study semantics (issue 14): the target each trial is judged on, duplicates of a trained candidate, and the
study's identity (the question it asks).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
# The statuses before this revision (the models' TRIAL_STATUSES then), for the status column's comment.
_STATUSES = ("running", "completed", "infeasible", "invalid", "pruned", "stopped", "diverged", "failed", "interrupted")


def upgrade() -> None:
    with op.batch_alter_table("archsearch_studies") as batch:
        batch.add_column(sa.Column("identity", sa.JSON(), nullable=True,
                                   comment="the study's question: base, target, space, recipe, task, objectives, "
                                           "constraints (archsearch.studies.identity); a rerun must match"))
    with op.batch_alter_table("archsearch_trials") as batch:
        batch.add_column(sa.Column("target", sa.JSON(), nullable=True,
                                   comment="the target spec the constraints and size objectives were judged on: "
                                           "{name, spec_hash, canonical_hash, n_params, spec}; null without one"))
        batch.add_column(sa.Column("candidate_key", sa.String(64), nullable=True,
                                   comment="hash of the canonical proxy + target specs, task, recipe and seed"))
        batch.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True,
                                   comment="number of the trial whose stored result this one reuses"))
        batch.alter_column("status", existing_type=sa.String(16), existing_nullable=False,
                           comment="one of " + ", ".join(_STATUSES + ("duplicate",)))
    op.create_index("ix_archsearch_trials_candidate", "archsearch_trials", ["study_id", "candidate_key"])


def downgrade() -> None:
    op.drop_index("ix_archsearch_trials_candidate", table_name="archsearch_trials")
    with op.batch_alter_table("archsearch_trials") as batch:
        batch.alter_column("status", existing_type=sa.String(16), existing_nullable=False,
                           comment="one of " + ", ".join(_STATUSES))
        batch.drop_column("duplicate_of")
        batch.drop_column("candidate_key")
        batch.drop_column("target")
    with op.batch_alter_table("archsearch_studies") as batch:
        batch.drop_column("identity")
