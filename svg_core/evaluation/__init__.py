"""Evaluation: metrics, the best-of-N protocol, trajectory analyses (Figs. 5, 6) and figures."""
