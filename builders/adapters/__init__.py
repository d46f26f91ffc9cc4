"""Adapters: public annotation formats -> the project manifest schema."""
