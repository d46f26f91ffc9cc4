"""Ingest stage: manifests (own schema or a public dataset's, through `adapters/`) -> probed,
validated video records.
"""
