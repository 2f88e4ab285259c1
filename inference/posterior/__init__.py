"""Posterior methods (rejection ABC, NUTS, inverse INN, conditional INN, flow matching) and their building blocks."""
