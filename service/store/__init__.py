"""Adapters for Redis: the decision path's profile read and its safeguards."""
