"""Procedural phantoms with known ground truth, one module per kind."""
