"""The baseline: a bare Flask endpoint that reads the body and answers 202, nothing else."""

from __future__ import annotations

from flask import Flask, Response, request


def create_app() -> Flask:
    """Served as `gunicorn 'bench.webhook_ack.bare:create_app()'` with mlgate's gunicorn.conf.py."""
    app = Flask("bench_bare", static_folder=None)

    @app.post("/webhooks/github")
    def github() -> Response:
        # Receiving the body is work any webhook endpoint must do; everything after it is mlgate's.
        request.get_data()
        return Response("accepted\n", status=202, mimetype="text/plain")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    return app
