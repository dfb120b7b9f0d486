"""The texts learners read speak of the course, not of how the course was built.

Scanned: every cell (markdown, code with its comments, raw) of the chapters
(``notebooks/*.ipynb``) and of the learners' copies (``notebooks/student/*.ipynb``), the book's
pages (``book/**/*.md``, without the vendored ``book/_static``), ``README.md``,
``CHANGELOG.md``, ``benchmarks/README.md``, ``data/README.md``, and the docstrings (read
with ``ast``) and comments (read with ``tokenize``) of ``dlbio_teach/*.py``. The tests
themselves are not scanned: they may name what they look for.

Flagged (``RULES``):

* issue, ticket, task or pull-request numbers ("issue 26", "issue #26", "(#26)", "task 12",
  "PR 3") and references to an issue as a work item ("the issue on ...", "filed", "closing
  note");
* the machinery that built and tested the book: a machine or time "lent", "drawn" or
  "available" to someone, "device time", "the runner" (but not "the runner-up" nor a "test
  runner"), what "was not carried", "this session" and sessions of developers (but not
  "a Colab session" or pytest's "test session", which learners meet), runs that "timed out"
  or "ran out of time", "the machines that test this course", "the machine that made this
  book", "this book was run/made", "shared that CPU with other work";
* CI as a history of runs ("the CI run", "CI failed"). CI named as the project's test
  tooling, in the present tense ("``.ci/run`` does ...", "CI also runs the unit tests on
  Python 3.12"), is what a contributor needs from the README and the CHANGELOG, and stays.
  "CI" is matched in capitals only, and "95 % CI" (a confidence interval) never matches.

Not flagged: how the outputs are made as a procedure, in the present tense ("``course_time.py
--write`` makes the committed outputs", "where the book is made, ``DLBIO_STRICT_READINGS=1``"),
which documents a tool; the machine a benchmark ran on, which a timing needs.

A phrase that belongs where it is goes in ``ALLOWANCES``: one file, one rule, the exact
phrase, and the reason, so that an allowance cannot hide a new sentence elsewhere. An
allowance that no longer matches anything fails too, so that it is removed with its text.
"""
from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

_DEV = "say what the learner needs to know instead of how the book was made"

# (name, pattern, what to do). Case-insensitive unless the pattern sets (?-i:...).
RULES: list[tuple[str, str, str]] = [
    ("issue number",
     r"\b(?:issues?|tickets?|tasks?|bugs?|pull\s+requests?|(?-i:PRs?))\s*#?\s*\d+\b",
     "drop the number: a learner has no access to the project's tracker"),
    ("bare #number",
     r"(?:(?<=\s)|(?<=\()|(?<=\[)|^)#\d{1,5}\b(?![\w-])",
     "drop the reference to an issue or pull request"),
    ("issue as a work item",
     r"\b(?:the|this|that|another|an|open|same)\s+issue\s+(?:on|about|for|that\s+asks|"
     r"says|asks|tracks)\b|\bclosing\s+note\b|\bfiled\b",
     "drop it: the course text does not refer to the project's work items"),
    ("lent", r"\blent\b|\blend(?:s|ing)?\s+(?:us|it|the|a|one)\s+(?:machine|GPU|device)",
     _DEV),
    ("device time", r"\bdevice[-\s]+time\b", _DEV),
    ("machine drawn or available",
     r"\b(?:machines?|GPUs?|devices?|accelerators?)\s+(?:was|were)\s+"
     r"(?:lent|drawn|allotted|granted|available)\b"
     r"|\bdrawn\s+(?:a|one|the)\s+(?:machine|GPU|device)\b"
     r"|\bthe\s+time\s+(?:the|a|that|its)\s+(?:machine|GPU|device)\b",
     _DEV),
    ("runner", r"(?<!test\s)\brunner(?:s|'s|s')?\b(?![-\u2011]up)", _DEV),
    ("not carried",
     r"\bnot\s+carried\b(?!\s+(?:over|out|through|forward|on)\b)", _DEV),
    ("session",
     r"\b(?:this|that|one|a|the|each|every|per|same|another|earlier|later|previous|next|"
     r"our|my|its)\s+sessions?\b"
     r"|\b(?:developer|development|coding|agent|helper|work|working)s?'?\s+sessions?\b"
     r"|\bsessions?\s+of\s+(?:the\s+)?(?:developers?|agents?|work)\b",
     _DEV),
    ("out of time",
     r"\b(?:ran|run|runs|running)\s+out\s+of\s+time\b|\btimed\s+out\b|\btime\s+ran\s+out\b"
     r"|\b(?:was|were)\s+(?:cut\s+off|killed)\b",
     _DEV),
    ("machines that test or made the book",
     r"\b(?:machines?|computers?|servers?|CPUs?|GPUs?)\s+(?:that|which)\s+"
     r"(?:test|tests|tested|build|builds|built)\s+(?:this|the)\s+"
     r"(?:course|book|chapters?|notebooks?|package)\b"
     r"|\b(?:made|produced|ran|run)\s+(?:this|the)\s+book\b"
     r"|\b(?:this|the)\s+book\s+was\s+(?:made|run|produced|tested|written)\b"
     r"|\bon\s+which\s+(?:this|the)\s+book\b",
     _DEV),
    ("shared CPU",
     r"\bshared\s+(?:that|the|this|its)\s+(?:CPU|machine|cores?|GPU)\b|\bother\s+work\b",
     "drop it, or move the timing caveat to benchmarks/README.md"),
    ("CI history",
     r"(?-i:\bCI\b)\s+(?:passed|failed|was|were|ran|broke|timed|stopped|did)\b"
     r"|\b(?:the|a|this|that|last|first|every|each|our)\s+(?-i:CI)\s+"
     r"(?:runs?|jobs?|builds?|pipelines?)\b(?!\s+(?:the|every|each|all)\b)",
     "drop the history of CI runs; say what the tests check"),
]
_COMPILED = [(name, re.compile(pattern, re.IGNORECASE), advice)
             for name, pattern, advice in RULES]


@dataclass(frozen=True)
class Allowance:
    path: str      # relative to the repository root
    rule: str      # a name in RULES
    phrase: str    # the matched phrase, exactly (case-insensitive)
    reason: str


ALLOWANCES: list[Allowance] = [
    Allowance("benchmarks/README.md", "shared CPU", "shared the CPU",
              "a timing table states what else ran on the machine while it was measured"),
    Allowance("benchmarks/README.md", "shared CPU", "other work",
              "a timing table states what else ran on the machine while it was measured"),
]


@dataclass(frozen=True)
class Hit:
    path: str
    where: str     # "line 12" or "cell 3, line 2"
    rule: str
    phrase: str
    advice: str

    def message(self) -> str:
        return (f"{self.path}, {self.where}: {self.phrase!r} ({self.rule}): {self.advice}; "
                "or, if it belongs there, add a narrow Allowance with its reason in "
                "tests/test_wording.py")


def scan_text(text: str) -> list[tuple[int, str, str, str]]:
    """(line within text, 1-based; rule; phrase; advice) for every match in text."""
    found = []
    for name, regex, advice in _COMPILED:
        for match in regex.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((line, name, " ".join(match.group(0).split()), advice))
    return sorted(found)


def _notebook_units(path: Path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        source = cell["source"]
        text = "".join(source) if isinstance(source, list) else source
        yield f"cell {index}, line ", 1, text


def _python_units(path: Path):
    text = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(node, clean=False)
            if docstring is not None:
                yield "line ", node.body[0].lineno, docstring
    # Comments: consecutive comment lines form one block, so that a phrase may run over two.
    block: list[str] = []
    first = last = 0
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        if block and line != last + 1:
            yield "line ", first, "\n".join(block)
            block = []
        if not block:
            first = line
        block.append(token.string.lstrip("#:").strip())
        last = line
    if block:
        yield "line ", first, "\n".join(block)


def _markdown_units(path: Path):
    yield "line ", 1, path.read_text(encoding="utf-8")


def scan_file(path: Path, root: Path = REPO_ROOT,
              allowances: list[Allowance] | None = None) -> list[Hit]:
    """Every flagged phrase in one learner-facing file, less the allowances for that file."""
    allowances = ALLOWANCES if allowances is None else allowances
    rel = path.relative_to(root).as_posix()
    units = {".ipynb": _notebook_units, ".py": _python_units}.get(path.suffix, _markdown_units)
    hits = []
    for prefix, start, text in units(path):
        for line, rule, phrase, advice in scan_text(text):
            if any(a.path == rel and a.rule == rule and a.phrase.lower() == phrase.lower()
                   for a in allowances):
                continue
            hits.append(Hit(rel, f"{prefix}{start + line - 1}", rule, phrase, advice))
    return hits


def learner_texts(root: Path = REPO_ROOT) -> list[Path]:
    paths = sorted(root.glob("notebooks/*.ipynb")) + sorted(root.glob("notebooks/student/*.ipynb"))
    paths += sorted(p for p in root.glob("book/**/*.md")
                    if "_static" not in p.relative_to(root).parts)
    paths += [root / name for name in ("README.md", "CHANGELOG.md", "benchmarks/README.md",
                                       "data/README.md") if (root / name).is_file()]
    paths += sorted(root.glob("dlbio_teach/*.py"))
    return paths


TEXTS = learner_texts()


def test_every_kind_of_text_is_scanned():
    rels = {p.relative_to(REPO_ROOT).as_posix() for p in TEXTS}
    for expected in ("README.md", "CHANGELOG.md", "benchmarks/README.md", "data/README.md",
                     "book/intro.md", "notebooks/01_nn_basics.ipynb",
                     "notebooks/student/01_nn_basics.ipynb", "dlbio_teach/runtime.py"):
        assert expected in rels, f"{expected} is not scanned"
    assert not any(r.startswith(("book/_static/", "tests/")) for r in rels)


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_no_words_about_how_the_book_was_made(path):
    hits = scan_file(path)
    assert not hits, "\n".join(["How the book was made stays out of what learners read:"]
                               + [hit.message() for hit in hits])


def test_every_allowance_is_still_needed():
    unused = []
    for allowance in ALLOWANCES:
        hits = scan_file(REPO_ROOT / allowance.path, allowances=[])
        if not any(h.rule == allowance.rule and h.phrase.lower() == allowance.phrase.lower()
                   for h in hits):
            unused.append(f"{allowance.path}: {allowance.phrase!r} ({allowance.rule}) no "
                          "longer occurs: remove its Allowance from tests/test_wording.py")
    assert not unused, "\n".join(unused)


def test_every_allowance_names_a_rule():
    names = {name for name, _, _ in RULES}
    assert all(a.rule in names and a.reason for a in ALLOWANCES)


# Hand-built texts: what the scanner must catch, and what it must leave alone.

BAD_MARKDOWN = """# A chapter

No real annotated volume can be downloaded on the machines that test this course, so the
chapter is synthetic (see issue 26 and #31). Chapters 3 and 4 did not finish in the time
the machine was lent, and chapter 6 did not start (a fault of the runner, since mended).
"""

BAD_NOTEBOOK_CELLS = [
    ("markdown", "The device time of this session was 15 minutes; `pydantic-zarr` was not\n"
                 "carried, so the run timed out."),
    ("code", "x = 1  # see task 12 and PR 3\n"
             "print('ran on the machine that made this book')"),
    ("markdown", "The run shown here shared that CPU with other work. The last CI run\n"
                 "failed; CI passed after the GPU was drawn. Filed by a session."),
]

BAD_MODULE = '''"""A module.

Tested on the 2-core CPU on which this book was run, as the issue on the learners' machines
asks (issue #26).
"""


def f():
    """Fixed for ticket 7 in a developer session; this book was made with it."""
    # the H200 was lent to one session, so this ran out of time
    return 1
'''

GOOD_TEXT = """Files you write on Colab disappear when the Colab session ends. The book is built
once per test session. Here the runner-up on the target tiles was the three-class U-Net, and
pytest is the test runner. F1@0.5 = 0.84, 95 % CI [0.79, 0.88]; the mean PSNR, 95 % CI.
`.ci/run` does the second command; CI also runs the unit tests on Python 3.12. The nuclei
are drawn in micrometres; a GPU is used when one is available, and the chapter trains on
it. Star-convex polyhedra do not carry over to this volume, and the lessons carried over
from chapter 3 hold. Training stops when the validation loss stops improving. Colours such
as "#000000" and "#1f77b4" are hex codes. Step 3 of the export writes the files. The
benchmark names the machine it ran on. Another seed, or the same seed on another machine,
gives other weights. This is an issue of leakage, and every task of segmentation needs a
baseline. The outputs are committed; `course_time.py --write` makes them.
"""


def _write_notebook(path: Path, cells: list[tuple[str, str]]) -> None:
    notebook = {"cells": [{"cell_type": kind, "metadata": {}, "source": text.splitlines(True),
                           **({"outputs": [], "execution_count": None}
                              if kind == "code" else {})}
                          for kind, text in cells],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook), encoding="utf-8")


def test_hand_built_texts_are_caught(tmp_path):
    (tmp_path / "page.md").write_text(BAD_MARKDOWN, encoding="utf-8")
    _write_notebook(tmp_path / "chapter.ipynb", BAD_NOTEBOOK_CELLS)
    (tmp_path / "module.py").write_text(BAD_MODULE, encoding="utf-8")

    page = {(h.where, h.phrase.lower()) for h in scan_file(tmp_path / "page.md", tmp_path)}
    assert {("line 3", "machines that test this course"), ("line 4", "issue 26"),
            ("line 4", "#31"), ("line 4", "the time the machine"), ("line 5", "lent"),
            ("line 5", "runner")} <= page

    chapter = {(h.where, h.phrase.lower())
               for h in scan_file(tmp_path / "chapter.ipynb", tmp_path)}
    assert {("cell 0, line 1", "device time"), ("cell 0, line 1", "this session"),
            ("cell 0, line 1", "not carried"), ("cell 0, line 2", "timed out"),
            ("cell 1, line 1", "task 12"), ("cell 1, line 1", "pr 3"),
            ("cell 1, line 2", "made this book"), ("cell 2, line 1", "shared that cpu"),
            ("cell 2, line 1", "other work"), ("cell 2, line 1", "last ci run"),
            ("cell 2, line 2", "ci passed"), ("cell 2, line 2", "gpu was drawn"),
            ("cell 2, line 2", "filed"), ("cell 2, line 2", "a session")} <= chapter

    module = {(h.where, h.phrase.lower()) for h in scan_file(tmp_path / "module.py", tmp_path)}
    assert {("line 3", "on which this book"), ("line 3", "the issue on"),
            ("line 4", "issue #26"), ("line 9", "ticket 7"), ("line 9", "developer session"),
            ("line 9", "this book was made"), ("line 10", "lent"), ("line 10", "one session"),
            ("line 10", "ran out of time")} <= module

    message = scan_file(tmp_path / "chapter.ipynb", tmp_path)[0].message()
    assert message.startswith("chapter.ipynb, cell 0, line 1: ") and "Allowance" in message


def test_hand_built_legitimate_text_is_not_flagged(tmp_path):
    (tmp_path / "page.md").write_text(GOOD_TEXT, encoding="utf-8")
    _write_notebook(tmp_path / "chapter.ipynb", [("markdown", GOOD_TEXT),
                                                 ("code", "color = '#000000'  # black\n")])
    (tmp_path / "module.py").write_text(f'"""{GOOD_TEXT}"""\n# {GOOD_TEXT[:80]}\n',
                                        encoding="utf-8")
    for name in ("page.md", "chapter.ipynb", "module.py"):
        assert scan_file(tmp_path / name, tmp_path) == [], name


def test_an_allowance_is_narrow(tmp_path):
    (tmp_path / "page.md").write_text("It shared the CPU with other work.\n", encoding="utf-8")
    allow = [Allowance("page.md", "shared CPU", "other work", "a timing caveat")]
    hits = scan_file(tmp_path / "page.md", tmp_path, allowances=allow)
    assert [h.phrase for h in hits] == ["shared the CPU"]
    assert len(scan_file(tmp_path / "page.md", tmp_path,
                         allowances=[Allowance("other.md", "shared CPU", "other work", "x")])) == 2
