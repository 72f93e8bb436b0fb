"""GET /metrics: Prometheus metrics of every mlgate process, and the queues' depth."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

import redis
from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric

from bot import telemetry
from bot.state import queues
from bot.web.answers import answer
from bot.web.services import services

bp = Blueprint("prometheus", __name__)


class QueueDepth:
    """mlgate_queue_depth, read from Redis when scraped (no process holds it)."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("mlgate_queue_depth", "Jobs waiting", labels=["queue"])
        try:
            found = queues.depths(self.conn)
        except redis.RedisError:
            return  # /readyz says Redis is down; the other figures are still worth a scrape
        for name, depth in found.items():
            family.add_metric([name], depth)
        yield family


@bp.get("/metrics")
def metrics() -> Response:
    token = services().settings.metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return answer(
                401,
                "unauthorized: /metrics needs the MLGATE_METRICS_TOKEN bearer",
                subject="metrics",
            )
    body = telemetry.exposition(QueueDepth(services().redis))
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
