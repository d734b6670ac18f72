"""Transports: each implements one small `send` and declares its limits as attributes."""
