"""Assets (SPEC §11): named, reusable data attached to a scope.

The package's public face, as the Python examples of docs/assets.md use it.
"""

from molexp.core.assets.library import (
    AddResult,
    Asset,
    Check,
    Content,
    Listing,
    Scope,
    Users,
    add_asset,
    all_scopes,
    asset_by_ref,
    describe,
    find_everywhere,
    find_for_run,
    get_asset,
    hash_path,
    load_asset,
    parse_scope,
    remove_asset,
    resolve_asset,
    scan,
    scope_of_ref,
    users_of,
    verify_asset,
)

__all__ = [
    "AddResult", "Asset", "Check", "Content", "Listing", "Scope", "Users", "add_asset",
    "all_scopes", "asset_by_ref", "describe", "find_everywhere", "find_for_run", "get_asset",
    "hash_path", "load_asset", "parse_scope", "remove_asset", "resolve_asset", "scan",
    "scope_of_ref", "users_of", "verify_asset",
]  # fmt: skip
