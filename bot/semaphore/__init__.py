"""The Semaphore API client and its pipeline notifications."""
