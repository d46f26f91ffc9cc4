"""Training: the recipe (config) and the thin TRL SFT trainer, data, collator."""
