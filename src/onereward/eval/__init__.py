"""Evaluation: usability, per-dimension scores, GSB and reward-model accuracy (`metrics`), the tables built from a
run's results.json (`tables`) and the self-contained HTML report (`report`).

Nothing is imported here, so `import onereward.eval.metrics` does not pull in matplotlib.
"""
