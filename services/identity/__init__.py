"""orbitq.services.identity: API keys (issue, hash, verify) and the broker's signing key file."""
