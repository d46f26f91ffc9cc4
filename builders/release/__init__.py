"""Releases: versioned publishing to the Hub or a local folder, with changelog and semver tags."""
