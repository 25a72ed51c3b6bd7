"""DIP (按病种分值付费): keys, the catalogue, assignment and point-value settlement."""
