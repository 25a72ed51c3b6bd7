"""Self-contained HTML reports; matplotlib is imported only when a plot is drawn."""
