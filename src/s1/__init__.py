"""s1: simple test-time scaling — curate, train, budget-force and evaluate reasoning models."""

__version__ = "0.1.0"
