"""Posterior methods (rejection ABC, NUTS, inverse INN, conditional INN) and their building blocks."""
