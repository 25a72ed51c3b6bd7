"""DIP (按病种分值付费): keys, the catalogue, assignment and point-value settlement, all computed
in memory; reading and writing files is the job of ``grouper.jobs.dip``.

Other subpackages import from here, never from the modules inside."""

from grouper.payment.dip.assign import ASSIGN_STATUSES, ASSIGNED_SCHEMA, Assigner, assign, assigned_batch
from grouper.payment.dip.catalogue import (GROUP_TYPES, Catalogue, DipParams, build_catalogue,
                                           catalogue_from_base)
from grouper.payment.dip.keys import (DEFAULT_COLUMNS, STATUSES, TREATMENT_TYPES, BaseCases, DipColumns,
                                      ProcedureTypes, diagnosis_parts, principal_codes)
from grouper.payment.dip.settle import (DIP_CASE_TYPES, SETTLED_SCHEMA, DipSettlement, settle, settle_table,
                                        settlement_point_value)

__all__ = ["ASSIGNED_SCHEMA", "ASSIGN_STATUSES", "Assigner", "BaseCases", "Catalogue", "DEFAULT_COLUMNS",
           "DIP_CASE_TYPES", "DipColumns", "DipParams", "DipSettlement", "GROUP_TYPES", "ProcedureTypes",
           "SETTLED_SCHEMA", "STATUSES", "TREATMENT_TYPES", "assign", "assigned_batch", "build_catalogue",
           "catalogue_from_base", "diagnosis_parts", "principal_codes", "settle", "settle_table", "settlement_point_value"]
