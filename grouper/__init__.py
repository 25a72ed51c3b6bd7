"""drg-grouper: an exact, fast CHS-DRG grouper over Apache Arrow."""
