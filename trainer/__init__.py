"""Training and evaluation on the built datasets."""
