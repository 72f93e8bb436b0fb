"""Webhook-to-comment latency and GitHub API calls per event, through web, Redis and worker.

Run it with `.venv/bin/python -m bench.evaluation_flow --help`.
"""
