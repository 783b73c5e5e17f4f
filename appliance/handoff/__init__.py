"""Handing conversations to humans: escalation, the human queue and webhooks to helpdesks."""
