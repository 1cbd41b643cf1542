"""Which labels to fix: rank a finished run's cases by how suspect their labels (or images) look, from the
predictions the run already holds for cases its models did not train on. Nothing is refitted.

:func:`automed.audit.runner.audit_run` (``automed audit RUN``, :meth:`automed.Run.audit`) writes the audit;
each task's auditor (:attr:`automed.tasks.base.Task.auditor`) finds the evidence.
"""
