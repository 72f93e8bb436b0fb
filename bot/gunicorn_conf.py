"""gunicorn settings for `mlgate serve`; GUNICORN_CMD_ARGS may override any of them."""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# The webhook view only verifies and enqueues; a few threads per process hide Redis round trips.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# GitHub gives up on a delivery after 10 s; answer long before that or fail visibly.
timeout = 10
graceful_timeout = 10
keepalive = 5
accesslog = "-"
errorlog = "-"
# The status and body size are enough; GitHub's headers carry no secret, bodies are not logged.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def child_exit(server: object, worker: object) -> None:
    """A web process ended: its live Prometheus gauges go with it."""
    from bot import telemetry

    telemetry.process_dead(int(getattr(worker, "pid", 0)))
