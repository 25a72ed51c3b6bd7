"""Rule tables as plain data: the model, loading with validation and fingerprint, the condition
vocabulary, the registry of bundled and local schemes, the verified disk cache."""
