"""Offline modelling: profile updates, a visitor simulator and the training script.

``models.profiles`` defines how events change a stored visitor profile (the
reference the Redis scripts mirror), ``models.simulator`` generates synthetic
visitors and logged decisions, and ``python -m models.train`` trains the bundled
LightGBM model in ``models/default``.
"""
