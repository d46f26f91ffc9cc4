"""Rule splits stage: caption rules, the `mcq` and `caption_metadata` configs, no model."""
