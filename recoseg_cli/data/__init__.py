"""Slice datasets and the synthetic cohort generator."""
