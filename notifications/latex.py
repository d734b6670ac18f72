"""The one LaTeX → Unicode text converter (pylatexenc) of digests, pages and library imports.

pylatexenc 2's parser knows ``\\texttt``, ``\\textsf``, ``\\textup``, ``\\textmd`` and
``\\mbox`` take an argument, but its text converter has no rule for them and drops the
argument with the macro: ``\\texttt{LLaMA}-style`` became "-style". Here they keep their text,
like ``\\textbf``; and ``\\textless``, ``\\textgreater`` and the like are their character.
pylatexenc's notes about the malformed LaTeX it tolerates are not logged: feed and library text
is full of it, and a 3,000-entry import printed one line per entry.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

# text-mode macros whose argument is their text (the others pylatexenc knows already)
TEXT_MACROS = ("texttt", "textsf", "textup", "textmd", "textnormal", "mbox")
# text symbols pylatexenc drops (or shows as another character): Zotero's BibTeX export
# writes "<think>" as \textless{}think\textgreater{}
TEXT_SYMBOLS = {
    "textless": "<",
    "textgreater": ">",
    "textbar": "|",
    "textunderscore": "_",
    "textquotedbl": '"',
    "textbraceleft": "{",
    "textbraceright": "}",
    "textasciicircum": "^",
}


@functools.cache
def converter() -> Any:
    """pylatexenc's `LatexNodes2Text` (math as text, spaces not strict) with `TEXT_MACROS`."""
    from pylatexenc.latex2text import (  # 0.1 s to import: on first LaTeX
        LatexNodes2Text,
        MacroTextSpec,
        get_default_latex_context_db,
    )

    logging.getLogger("pylatexenc").setLevel(logging.WARNING)
    db = get_default_latex_context_db().filter_context()  # a copy: the default is shared
    macros = [MacroTextSpec(m, discard=False) for m in TEXT_MACROS]
    macros += [MacroTextSpec(m, simplify_repl=text) for m, text in TEXT_SYMBOLS.items()]
    db.add_context_category("paperwire-text", macros=macros, prepend=True)
    return LatexNodes2Text(latex_context=db, math_mode="text", strict_latex_spaces=False)
