"""Audiences: named targeting conditions over visitor facts and request context."""
