"""Slots (placements) and their content variants."""
