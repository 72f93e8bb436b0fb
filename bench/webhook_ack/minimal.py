"""The minimal honest webhook endpoint: HMAC of the body, then one Redis round trip, nothing else.

What any endpoint that may neither lose nor double a delivery must do at the least: verify
the signature of the raw body, and in one atomic step claim the delivery id, store the body
and queue it, answering 202 (200 for a duplicate, 503 when Redis fails). Served by the bench
as `gunicorn 'bench.webhook_ack.minimal:create_app()'` under mlgate's own gunicorn settings.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import redis
from flask import Flask, Response, request

# Claim and store in one command (SET NX), queue only what was claimed: one round trip.
# KEYS: the body's key, the inbox list; ARGV: body, ttl, delivery id
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  return 1
end
return 0
"""
# As long as mlgate keeps a delivery id.
_TTL = 8 * 24 * 3600


def payload_key(prefix: str, delivery_id: str) -> str:
    return f"{prefix}:payload:{delivery_id}"


def inbox_key(prefix: str) -> str:
    return f"{prefix}:inbox"


def create_app() -> Flask:
    """Reads GITHUB_WEBHOOK_SECRET, REDIS_URL and BENCH_PREFIX (the start of its every key)."""
    secret = os.environ["GITHUB_WEBHOOK_SECRET"].encode()
    prefix = os.environ["BENCH_PREFIX"]
    inbox = inbox_key(prefix)
    # The same short timeouts as mlgate's client: a dead Redis must be a quick 503.
    conn = redis.Redis.from_url(
        os.environ["REDIS_URL"], socket_connect_timeout=0.3, socket_timeout=0.5
    )
    claim = conn.register_script(_CLAIM)
    app = Flask("bench_minimal", static_folder=None)

    @app.post("/webhooks/github")
    def github() -> Response:
        body = request.get_data()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return Response("bad signature\n", status=401, mimetype="text/plain")
        delivery_id = request.headers.get("X-GitHub-Delivery", "")
        if not delivery_id:
            return Response("missing delivery id\n", status=400, mimetype="text/plain")
        try:
            claimed = claim(
                keys=[payload_key(prefix, delivery_id), inbox], args=[body, _TTL, delivery_id]
            )
        except redis.RedisError:
            return Response("redis unavailable\n", status=503, mimetype="text/plain")
        if not claimed:
            return Response("duplicate\n", status=200, mimetype="text/plain")
        return Response("accepted\n", status=202, mimetype="text/plain")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    return app
