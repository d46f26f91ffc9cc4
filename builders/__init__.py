"""Stages that turn a manifest into clips and dataset splits."""
