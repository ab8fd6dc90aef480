"""The web view of a workspace (SPEC §18): `molexp ui` and `molexp report`.

An optional layer between the CLI and the core: nothing below it imports it, and
the CLI imports it only inside the two commands that use it.  ``server`` is a thin
HTTP adapter (parse a request, one call into ``views``, render JSON or a file);
``views`` turns the core's records into the JSON the pages read; ``files``
decides which workspace files may be served; ``report`` writes the experiment
page into one self-contained HTML file.  The pages themselves are static files
(``static/``: one script, one style sheet and the vendored uPlot) that render the
JSON with DOM text nodes, never as HTML.
"""
