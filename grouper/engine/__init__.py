"""The grouping engine: rule tables compiled to flat arrays, the Cython kernel that evaluates them
over Arrow batches, the reference interpreter that checks it, and the ``Grouper`` API."""
