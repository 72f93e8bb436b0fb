"""Doing the work: checkouts, runs, evaluations, deploys, and publishing their results."""
