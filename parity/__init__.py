"""Relate the twins: catalogue, weight transfer, comparison, training, study, CLI."""
