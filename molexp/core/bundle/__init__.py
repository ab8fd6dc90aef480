"""Bundles: move projects, experiments and runs between workspaces (SPEC §10, §17).

``manifest`` holds the format (member names, header, manifest, hashes),
``archive`` writes and safely reads the tar stream, ``export`` and ``importer``
are the two commands.  Each module imports only those before it in that list.
"""
