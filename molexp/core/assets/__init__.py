"""Assets (SPEC §11): named, reusable data attached to a scope.

The package's public face, as the Python examples of docs/assets.md and the
`molexp assets` commands use it.  Its modules, each importing only those
before it:

- :mod:`~molexp.core.assets.scope`: where a library lives (workspace, project, experiment);
- :mod:`~molexp.core.assets.content`: walking, hashing and copying files and folders;
- :mod:`~molexp.core.assets.library`: asset records: reading, finding, verifying;
- :mod:`~molexp.core.assets.lineage`: lookups recorded on runs, and the runs that used an asset;
- :mod:`~molexp.core.assets.write`: adding and removing assets.
"""

from molexp.core.assets.content import Content, ProgressHook, hash_path
from molexp.core.assets.library import (
    Asset,
    Check,
    Listing,
    asset_by_ref,
    ensure_intact,
    failures_error,
    find_everywhere,
    get_asset,
    load_asset,
    resolve_asset,
    scan,
    shadowed_by,
    verify_asset,
)
from molexp.core.assets.lineage import (
    Users,
    current_context,
    describe,
    find_for_run,
    record_lookup,
    users_of,
)
from molexp.core.assets.scope import Scope, all_scopes, parse_scope, run_scope, scope_of_ref
from molexp.core.assets.write import AddResult, add_asset, remove_asset

__all__ = [
    "AddResult", "Asset", "Check", "Content", "Listing", "ProgressHook", "Scope", "Users",
    "add_asset", "all_scopes", "asset_by_ref", "current_context", "describe", "ensure_intact",
    "failures_error", "find_everywhere", "find_for_run", "get_asset", "hash_path", "load_asset",
    "parse_scope", "record_lookup", "remove_asset", "resolve_asset", "run_scope", "scan",
    "scope_of_ref", "shadowed_by", "users_of", "verify_asset",
]  # fmt: skip
