"""Evaluation harness: runners, the test data, metrics and the Table 2 report."""
