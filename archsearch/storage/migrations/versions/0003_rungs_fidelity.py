"""Trustworthy search (issue 16): successive-halving rungs (a row per trial and rung, the decision made once) and
proxy-fidelity measurements.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archsearch_trials") as batch:
        batch.add_column(sa.Column("rung", sa.Integer(), nullable=True,
                                   comment="successive halving: index of the last rung the trial reached (null "
                                           "without halving)"))
    op.create_table(
        "archsearch_rungs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("archsearch_studies.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False,
                  comment="the trial's number (a retry's: the trial it re-runs)"),
        sa.Column("rung", sa.Integer(), nullable=False, comment="rung index, 0 first"),
        sa.Column("fraction", sa.Float(), nullable=False, comment="the rung's fraction of the recipe's length"),
        sa.Column("step", sa.Integer(), nullable=False, comment="the step of the evaluation that scored the rung"),
        sa.Column("objectives", sa.JSON(), nullable=False, comment="objective values at the rung, study order"),
        sa.Column("feasible", sa.Boolean(), nullable=False, comment="constraints satisfied"),
        sa.Column("decision", sa.String(16), nullable=False,
                  comment="promoted, stopped, or final (the last rung)"),
        sa.Column("worker", sa.String(256), nullable=True, comment="host:pid that decided"),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("study_id", "trial_number", "rung", name="uq_archsearch_rungs_trial"),
    )
    op.create_table(
        "archsearch_fidelity",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("archsearch_studies.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("factor", sa.Float(), nullable=False, comment="long budget / short budget"),
        sa.Column("candidates", sa.JSON(), nullable=False,
                  comment="[{number, chosen_by, short: [...], long: [...]}]"),
        sa.Column("noise", sa.JSON(), nullable=True,
                  comment="one candidate at a second seed: {number, seeds, values}, the noise floor"),
        sa.Column("stats", sa.JSON(), nullable=False,
                  comment="per objective: n, tau, tau_ci95, pairwise_accuracy, pairwise_accuracy_ci95"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("archsearch_fidelity")
    op.drop_table("archsearch_rungs")
    with op.batch_alter_table("archsearch_trials") as batch:
        batch.drop_column("rung")
