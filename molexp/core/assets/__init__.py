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
    Verification,
    asset_by_ref,
    find_everywhere,
    get_asset,
    list_assets,
    load_asset,
    resolve_asset,
    scan,
    verify_asset,
    verify_assets,
)
from molexp.core.assets.lineage import (
    Dangling,
    Input,
    Users,
    dangling_error,
    dangling_inputs,
    describe,
    describe_in,
    find_for_run,
    path_for,
    users_of,
    verify_with_lineage,
)
from molexp.core.assets.scope import Scope, all_scopes, parse_scope, run_scope, scope_of_ref
from molexp.core.assets.write import AddResult, add_asset, add_to, remove_asset, remove_from

__all__ = [
    "AddResult", "Asset", "Check", "Content", "Dangling", "Input", "Listing", "ProgressHook",
    "Scope", "Users", "dangling_error", "dangling_inputs", "verify_with_lineage",
    "Verification", "add_asset", "add_to", "all_scopes", "asset_by_ref", "describe",
    "describe_in", "find_everywhere", "find_for_run", "get_asset", "hash_path", "list_assets",
    "load_asset", "parse_scope", "path_for", "remove_asset", "remove_from", "resolve_asset",
    "run_scope", "scan", "scope_of_ref", "users_of", "verify_asset", "verify_assets",
]  # fmt: skip
