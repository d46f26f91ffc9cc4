"""RL after SFT: prompt export, rewards shared with the eval's parser, the GRPO recipe."""
