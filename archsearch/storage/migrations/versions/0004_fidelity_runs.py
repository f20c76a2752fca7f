"""Fidelity runs kept (issue 16 follow-up): each retraining of `study fidelity` is stored as soon as it finishes, so
a stopped measurement loses none and its rerun trains only the missing ones; a measurement cut short by a time
limit is marked partial, with how many candidates were chosen.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archsearch_fidelity") as batch:
        # Rows stored before this revision were complete measurements: false.
        batch.add_column(sa.Column("partial", sa.Boolean(), nullable=False, server_default=sa.false(),
                                   comment="a time limit ended it before every chosen candidate (or the noise "
                                           "floor) was retrained; the statistics cover `candidates`"))
        batch.add_column(sa.Column("n_chosen", sa.Integer(), nullable=True,
                                   comment="candidates chosen (len(candidates) when not partial; null before "
                                           "revision 0004)"))
    op.create_table(
        "archsearch_fidelity_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("archsearch_studies.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False,
                  comment="hash of the proxy spec, task, recipe and seed trained "
                          "(archsearch.studies.dedup.candidate_key)"),
        sa.Column("trial_number", sa.Integer(), nullable=False,
                  comment="the study trial whose candidate was retrained"),
        sa.Column("factor", sa.Float(), nullable=False,
                  comment="length over the study recipe's (1: the noise floor run)"),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=False, comment="the recipe trained (the study's, scaled by factor)"),
        sa.Column("status", sa.String(16), nullable=False, comment="completed, diverged or stopped (the training's)"),
        sa.Column("objectives", sa.JSON(), nullable=False,
                  comment="objective values, study order (analytic ones as stored for the trial; trained ones null "
                          "unless completed)"),
        sa.Column("metrics", sa.JSON(), nullable=True, comment="the training result's metrics"),
        sa.Column("wall_time_s", sa.Float(), nullable=False,
                  comment="seconds the training took (time limits use it)"),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("study_id", "run_key", name="uq_archsearch_fidelity_runs_key"),
    )


def downgrade() -> None:
    op.drop_table("archsearch_fidelity_runs")
    with op.batch_alter_table("archsearch_fidelity") as batch:
        batch.drop_column("n_chosen")
        batch.drop_column("partial")
