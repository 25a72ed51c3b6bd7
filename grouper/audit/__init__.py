"""Smart audit (智能审核): case edits from a versioned table and provider screens against peers."""

from grouper.audit.edits import FINDING_SCHEMA, SEVERITIES, Edit, EditSet, load_edits, run_edits

__all__ = ["FINDING_SCHEMA", "SEVERITIES", "Edit", "EditSet", "load_edits", "run_edits"]
