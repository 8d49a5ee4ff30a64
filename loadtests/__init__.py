"""Load generation and the decide benchmark (docs/benchmarks.md)."""
