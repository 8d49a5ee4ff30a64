"""Persona: real-time website personalization on Redis and LightGBM."""

__version__ = "0.1.0"
