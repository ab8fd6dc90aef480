"""molexp tag: add and remove tags of runs, experiments and projects (SPEC §16)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand

from molexp.cli import complete, output, state

if TYPE_CHECKING:
    from molexp.core.actions.curate import Annotated


def tag(
    words: list[str] = typer.Argument(
        ...,
        metavar="REF... [+TAG|-TAG]...",
        autocompletion=complete.tag_word,
        help="Runs, experiments or projects, then +TAG to add and -TAG to remove (applied in order).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print each REF's tags and notes as JSON."),
) -> None:
    """Add (+TAG) and remove (-TAG) tags of runs, experiments or projects.

    `molexp tag qm9/baseline/3f2a9c1e +keep -draft`.  With no +TAG or -TAG, print
    the tags.  Tags are names (letters, digits, '.', '_', '-'); they are not part of
    a run's identity.
    """
    from molexp.core.actions import curate

    refs, ops = curate.split_tag_words(words)
    render(curate.tag_ops(state.workspace(), refs, ops), json_out)


class TagCommand(TyperCommand):
    """`-TAG` is a word here, not an option: unknown options are passed on as
    words (``-h`` is not short for --help), and TAB after ``-`` offers the tags of
    the REFs already typed as well as the options."""

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        from typer._click.shell_completion import CompletionItem

        found = super().shell_complete(ctx, incomplete)
        if incomplete.startswith("-") and not incomplete.startswith("--"):
            found += [CompletionItem(w) for w in complete.tag_word(ctx, incomplete)]
        return found


tag.command_info = {  # type: ignore[attr-defined]
    "cls": TagCommand,
    "context_settings": {"ignore_unknown_options": True, "help_option_names": ["--help"]},
}


def render(done: Sequence[Annotated], json_out: bool) -> None:
    if json_out:
        output.print_json([a.to_json() for a in done])
    else:
        output.print_table(["ref", "tags"], [[a.ref, " ".join(a.tags)] for a in done])
    for a in done:
        if a.pending:
            output.say(
                f"{a.ref} is held by a running attempt: the change is queued and lands in "
                "its run.json when the attempt next saves it (at the latest when it ends)"
            )
