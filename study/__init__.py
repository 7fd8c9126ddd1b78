"""Turning a validated spec into a Ray Tune run tracked in MLflow; the ``study`` CLI."""
