"""Inference: full-resolution volume generation (chunked, streamed) and synthetic cohorts."""
