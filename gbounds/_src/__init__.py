"""Shared infrastructure: checks and errors, io. Never imports upward."""
