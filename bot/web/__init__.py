"""The Flask app: webhooks, metrics upload, health. Verify, record, enqueue, answer."""
