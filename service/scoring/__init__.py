"""Model bundles and the fast scoring path."""
