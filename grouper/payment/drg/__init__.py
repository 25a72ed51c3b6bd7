"""DRG settlement: payment standards, case types, the knob waterfall, year-end clearance."""
