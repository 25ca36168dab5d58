"""Background tasks (django-q2): each takes ids, re-reads what it needs and calls one service."""
from labeling import import_jobs


def import_job_run(job_id: int) -> None:
    import_jobs.import_job_run(job_id=job_id)
