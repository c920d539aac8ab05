"""Model registry workflows: register a version, import (inspect) its directory on a node, verify its
checksums, move aliases, write evaluations, deprecate, delete.

These functions are the only code that changes a version's status (through ``transition_version``),
its manifest (``ModelFile`` rows) or its aliases. Views and tasks call them; they open their own
transactions and never run on a node while a transaction is open.

One module per seam: ``common`` (errors, limits, checks, the state machine binding, the memory estimate),
``registration`` (versions, evaluations, lineage, aliases, deprecation, deletion), ``imports`` (inspecting
a directory on a node), ``verification`` (hashing the files on the node), ``starter`` (loading the
starter catalog). Callers use the names below:
``from models_registry import services; services.register_version(...)``.
"""

from models_registry.services import copies
from models_registry.services.common import (
    ALIAS_RE,
    DETAIL_MAX,
    UNDEPLOYABLE,
    Conflict,
    InvalidInput,
    NodeUnavailable,
    RegistryError,
    architecture_of,
    check_quantization,
    directory_of,
    extra_quantizations,
    memory_estimate,
    parse_source,
    transition_version,
    version_topic,
)
from models_registry.services.imports import import_version, request_import
from models_registry.services.registration import (
    EvaluationInput,
    check_parent,
    delete_version,
    deprecate,
    latest_scores,
    lineage,
    promote,
    refuse_delete_in_use,
    refuse_delete_with_versions,
    register_version,
    reinstate,
    set_evaluations,
    update_version,
)
from models_registry.services.starter import CatalogLoad, load_catalog
from models_registry.services.verification import manifest_digest, request_verify, verify_version

__all__ = [
    "ALIAS_RE", "CatalogLoad", "copies", "DETAIL_MAX", "UNDEPLOYABLE",
    "architecture_of", "check_parent", "check_quantization",
    "Conflict", "delete_version", "deprecate", "directory_of", "EvaluationInput", "extra_quantizations",
    "import_version", "InvalidInput", "latest_scores", "lineage", "load_catalog", "manifest_digest",
    "memory_estimate", "NodeUnavailable", "parse_source", "promote", "refuse_delete_in_use",
    "refuse_delete_with_versions", "register_version", "RegistryError", "reinstate", "request_import",
    "request_verify", "set_evaluations", "transition_version", "update_version", "verify_version",
    "version_topic",
]
