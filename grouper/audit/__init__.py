"""Smart audit (智能审核): case edits from a versioned table (``rules/audit/edits.toml``) and
provider screens against peers (thresholds in an audit pack, ``rules/audit/default.toml``).

Other subpackages import from here, never from the modules inside."""

from grouper.audit.edits import BUILTIN_NAMES, FINDING_SCHEMA, SEVERITIES, Edit, EditSet, load_edits, run_edits
from grouper.audit.pack import AuditPack, AuditPackError, load_audit_pack, parse_audit_pack
from grouper.audit.run import AuditResult, AuditRun, audit_batches, audit_table
from grouper.audit.screens import CASE_CODES, DEPT_PREFIX, HOSPITAL_SCHEMA, SCREENS

__all__ = ["BUILTIN_NAMES", "CASE_CODES", "DEPT_PREFIX", "FINDING_SCHEMA", "HOSPITAL_SCHEMA", "SCREENS", "SEVERITIES", "AuditPack", "AuditPackError",
           "AuditResult", "AuditRun", "Edit", "EditSet", "audit_batches", "audit_table", "load_audit_pack", "load_edits",
           "parse_audit_pack", "run_edits"]
