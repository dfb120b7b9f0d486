"""How a chapter's text reads its own outputs, checked against the run at hand.

A chapter's check cell asserts two kinds of claims. *Quality claims* (a network beats the
baseline, an interval contains its estimate) must hold in every run: they are plain
``assert`` statements. *Readings* quote the committed run: "the 3D U-Net was chosen
in every seed", "the strongest step of every shift lowered F1". They hold where the book's
outputs were made, but another CPU, a GPU or other library versions round differently,
train slightly different networks, and can give numbers that read differently. A reading
is checked with :func:`reading`: where the book is made (``DLBIO_STRICT_READINGS=1``, which
``benchmarks/course_time.py`` sets) a reading that does not hold stops the run, because the
text would no longer describe its outputs; anywhere else it prints a note, so that a
learner whose run differs learns why instead of meeting an error.
"""
from __future__ import annotations

import os

__all__ = ["STRICT_READINGS", "NOTE", "reading"]

#: The environment variable that makes :func:`reading` raise (``"1"``).
STRICT_READINGS = "DLBIO_STRICT_READINGS"
#: How the note of a reading that does not hold begins (``benchmarks/lessons.py`` counts them).
NOTE = "Note: the text says"


def reading(holds, text: str) -> bool:
    """Check one reading of the committed outputs that the chapter's text makes.

    Parameters
    ----------
    holds : bool
        Whether this run shows what the text says.
    text : str
        What the text says, as a sentence a reader can find in the chapter.

    Returns
    -------
    bool
        ``holds``. When it is false, raises ``AssertionError`` if ``$DLBIO_STRICT_READINGS``
        is ``"1"``, and otherwise prints a note.

    Examples
    --------
    >>> reading(0.9 > 0.8, "the U-Net scores higher than the baseline")
    True
    >>> reading(0.7 > 0.8, "the U-Net scores higher than the baseline")  # doctest: +ELLIPSIS
    Note: the text says "the U-Net scores higher than the baseline", and this run ...
    False
    """
    holds = bool(holds)
    if holds:
        return True
    if os.environ.get(STRICT_READINGS) == "1":
        raise AssertionError(f'the text says "{text}", and this run does not show it: read the '
                             "text again against the outputs.")
    print(f'{NOTE} "{text}", and this run does not show it. The book\'s numbers '
          "come from one run on one CPU (benchmarks/README.md names it); another CPU, a GPU or "
          "other library versions train slightly different networks. Read your own outputs "
          "the way the text reads the book's.")
    return False
