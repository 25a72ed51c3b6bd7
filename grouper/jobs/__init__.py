"""One module per command: read -> compute -> write (plus summary and report)."""
