"""Evaluation of synthetic data: fidelity, utility and privacy."""
