"""Liveness and readiness probes."""

from __future__ import annotations

import redis
from flask import Blueprint, Response

from bot.web.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    try:
        services().redis.ping()
    except redis.RedisError as exc:
        return Response(f"redis unavailable: {type(exc).__name__}\n", 503, mimetype="text/plain")
    return Response("ready\n", mimetype="text/plain")
