"""Private bottom layer: what every other subpackage shares (errors, column readers, exact sums,
batch helpers). Imports nothing from the rest of the package."""
