"""Soak and chaos: 10,000 signed deliveries through web, Redis and workers while Redis restarts,
a worker machine is killed and a fifth of GitHub's answers fail; every effect counted.

Run it with `.venv/bin/python -m bench.soak --help`.
"""
