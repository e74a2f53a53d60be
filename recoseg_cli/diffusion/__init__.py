"""Noise schedules, training losses and samplers for the conditional DDPM."""
