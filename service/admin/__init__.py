"""The marketer workspace: admin tokens, the versioned configuration, its API."""
