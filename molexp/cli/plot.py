"""Terminal plots (`metrics --plot`, `compare --aggregate --plot`), drawn with plotext.

plotext is an optional extra (``pip install 'molexp[plot]'``), imported only here and
only when a plot is asked for; without it the command exits 2 saying how to
install it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from molexp.cli import output
from molexp.errors import UsageError

INSTALL = "pip install 'molexp[plot]' (or: pip install 'plotext>=5.2,<6')"


def _plotext() -> Any:
    try:
        import plotext
    except ImportError:
        raise UsageError(
            f"--plot needs the plotext library, which is not installed; {INSTALL}"
        ) from None
    plotext.clear_figure()
    width, height = shutil.get_terminal_size((100, 25))
    plotext.plotsize(min(width, 120), max(min(height - 2, 30), 12))
    return plotext


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and value == value and abs(value) != float("inf")


def lines(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str
) -> None:
    """One line per series (``{label: (xs, ys)}``), on one chart."""
    plt = _plotext()
    for label, (xs, ys) in series.items():
        plt.plot(list(xs), list(ys), label=label, marker="braille")
    plt.title(title)
    plt.xlabel(xlabel)
    _show(plt)


def error_bars(
    xs: Sequence[Any],
    means: Sequence[float],
    stds: Sequence[float],
    title: str,
    xlabel: str,
    ylabel: str,
) -> None:
    """Means with ±std error bars against ``xs`` (numbers, or text as categories)."""
    plt = _plotext()
    numeric = all(is_number(x) for x in xs)
    positions = list(xs) if numeric else list(range(1, len(xs) + 1))
    plt.error(positions, list(means), yerr=list(stds), label=f"{ylabel} (mean ± std)")
    plt.plot(positions, list(means), marker="dot")
    if not numeric:
        plt.xticks(positions, [output.cell(x) for x in xs])
    plt.title(title)
    plt.xlabel(xlabel)
    _show(plt)


def _show(plt: Any) -> None:
    text = plt.build()
    if not output.color_enabled():
        text = plt.uncolorize(text)
    sys.stdout.write(text.rstrip("\n") + "\n")
