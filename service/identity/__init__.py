"""Recognizing the visitor: signed cookies and visitor ids."""
