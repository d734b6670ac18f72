"""A subscriber's paper library."""
