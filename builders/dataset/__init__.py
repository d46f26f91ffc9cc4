"""The build folder as a dataset: train/test assignment, row columns, config files, the card."""
