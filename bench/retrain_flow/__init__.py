"""Time from a data push on the default branch to the retrain PR, and its GitHub API calls."""
