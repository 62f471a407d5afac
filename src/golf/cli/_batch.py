"""The batch-command conventions (one bad structure never aborts the batch; exit 3): they live in
``golf.runs.batch_run``, where the runs that use them import them from."""
from golf.runs.batch_run import EXIT_CODES, PARTIAL, Skipped, describe, read_batch, report_stripped, split_supported

__all__ = ["EXIT_CODES", "PARTIAL", "Skipped", "describe", "read_batch", "report_stripped", "split_supported"]
