"""Every Redis key of mlgate, behind named functions."""
