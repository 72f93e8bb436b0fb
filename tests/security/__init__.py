"""Attacks on mlgate, each a test: what a hostile repository, comment or request tries."""
