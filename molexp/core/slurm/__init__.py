"""SLURM (SPEC §13), split along its jobs; none of these modules writes a record.

- ``scheduler``: the only caller of sbatch/squeue/scontrol/scancel, and the
  parsing of their answers (:class:`~molexp.core.slurm.scheduler.QueueView`).
- ``script``: the job-array script and the sbatch options it carries.
- ``submit``: which runs to submit, and the submission itself.
- ``reconcile``: what SLURM's answers make of the records queued or running under it.
- ``task``: one array task, continuing the attempt queued for it.
- ``journal``: what an unfinished submission did, and its repair.
- ``paths``: where SLURM files live in a workspace.

Attempts are queued, opened and closed by :mod:`molexp.core.execution.lifecycle`,
which these modules call.
"""
