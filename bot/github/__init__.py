"""The GitHub API client and what reads GitHub through it."""
