"""How fast POST /webhooks/github answers, against a bare Flask endpoint under the same gunicorn.

Run it with `make bench` or `.venv/bin/python -m bench.webhook_ack --help`.
"""
