"""Digest → rendered messages → transports. Knows nothing of SQL."""
