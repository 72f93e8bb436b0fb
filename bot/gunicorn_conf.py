"""gunicorn settings for `mlgate serve`; GUNICORN_CMD_ARGS may override any of them."""

import os


def _cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS says), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Sizing, measured with bench/webhook_ack/sizing.py (bench/README.md, "gunicorn settings"):
# a webhook costs about 1 ms of CPU in Python and waits about 0.1 ms for its one Redis round
# trip, so it is CPU-bound and one process runs Python on one core at a time (the GIL).
# Hence one process per core plus one, to keep every core busy while a process waits on
# Redis, the kernel or the GIL; 5 processes (gunicorn's 2 x cores + 1) measured no faster
# on 2 cores and cost more CPU per request and memory. Threads overlap those waits and hold
# the keep-alive connections (gthread's idle ones wait in its poller, not in a thread):
# 8 measured a little better than 4 (and 2 clearly worse) at 32 connections. Under a CPU
# quota (a container), set WEB_CONCURRENCY to the quota's cores + 1. Sync workers measured
# 2 to 3 times slower: they serve no keep-alive and one request per process at a time.
workers = int(os.environ.get("WEB_CONCURRENCY", _cores() + 1))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
# GitHub gives up on a delivery after 10 s; answer long before that or fail visibly.
timeout = 10
graceful_timeout = 10
# Seconds an idle keep-alive connection stays open. GitHub opens one connection per
# delivery; a proxy in front may reuse them, and its own idle timeout must be shorter than
# this, or it may send a request on a connection gunicorn is closing (a 502).
keepalive = 5
accesslog = "-"
errorlog = "-"
# The status and body size are enough; GitHub's headers carry no secret, bodies are not logged.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def child_exit(server: object, worker: object) -> None:
    """A web process ended: its live Prometheus gauges go with it."""
    from bot import telemetry

    telemetry.process_dead(int(getattr(worker, "pid", 0)))
