"""Notify service: Events become messages by email, SMS, webhook and in-app inbox."""
