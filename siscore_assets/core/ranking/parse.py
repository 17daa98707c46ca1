"""Reading POGs from text: the two syntaxes, located errors, and annotation files and folders.

Annotators write POGs by hand, so every problem is a :class:`PogError` naming the file, line and
column to fix.  Two text syntaxes are read:

* **line syntax** -- ``3=4=6>1=2=7>0>5`` -- most developed tier first, ``>`` between tiers,
  ``=`` inside a tier; unmentioned clusters are incomparable to everything.
* **edge-list syntax** -- one relation per line: ``0<1``, ``1>0``, ``1=2=3``; a line may chain
  several relations (``0<1<2``), and a bare ``5`` just declares an unrelated cluster.

In both, ``#`` starts a comment; blank lines, surrounding whitespace, spaces around operators,
CRLF line endings and a leading UTF-8 BOM are ignored.  Columns in error messages are 1-based
columns of the line as written (the BOM, if any, is not counted).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from siscore_assets.core.ranking.graph import Pog

__all__ = [
    "PogError",
    "annotator_files",
    "parse_edges",
    "parse_line",
    "parse_pog_text",
    "read_annotation_folder",
    "read_annotator",
    "read_pog_file",
    "read_pog_lines",
]

_BOM = "\ufeff"
_WORD = re.compile(r"[A-Za-z0-9_.+\-]+")
_OPS = "<>="
_FAST_LINE = re.compile(r"\s*[0-9]+(?:\s*[>=]\s*[0-9]+)*\s*")


class PogError(ValueError):
    """A POG text problem, located so an annotator can fix the file by hand."""

    def __init__(self, source: str, line: int, col: int, problem: str) -> None:
        super().__init__(source, line, col, problem)  # keeps the error picklable
        self.source = source
        self.line = line
        self.col = col
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.col}: {self.problem}"


def _describe_ids(ids: Collection[int]) -> str:
    s = sorted(ids)
    if not s:
        return "none"
    if s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}..{s[-1]}"
    return ", ".join(map(str, s[:12])) + (", ..." if len(s) > 12 else "")


def _split_lines(text: str) -> list[str]:
    """Physical lines, BOM and CR stripped; keeps line numbers as an editor shows them."""
    if text.startswith(_BOM):
        text = text[1:]
    return [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]


def _strip_comment(line: str) -> str:
    i = line.find("#")
    return line if i < 0 else line[:i]


def _parse_chain(
    line: str, *, source: str, line_no: int, known: frozenset[int] | None, syntax: str
) -> tuple[list[tuple[int, int]], list[tuple[str, int]]]:
    """Tokenise ``id (op id)*``; returns ids with columns and operators with columns."""
    ids: list[tuple[int, int]] = []
    ops: list[tuple[str, int]] = []
    body = _strip_comment(line)
    i, n = 0, len(body)
    expect_id = True

    def err(col: int, problem: str) -> PogError:
        return PogError(source, line_no, col, problem)

    while i < n:
        ch = body[i]
        col = i + 1
        if ch.isspace():
            i += 1
            continue
        if ch in _OPS:
            if expect_id:
                if not ops:
                    raise err(col, f"empty tier: '{ch}' has no cluster id before it")
                raise err(col, f"empty tier between '{ops[-1][0]}' and '{ch}'")
            if ch == "<" and syntax == "line":
                raise err(
                    col,
                    "'<' is not allowed in line syntax (most developed first, "
                    "'>' and '='); use the edge-list syntax for '<'",
                )
            ops.append((ch, col))
            expect_id = True
            i += 1
            continue
        m = _WORD.match(body, i)
        if m is None:
            raise err(col, f"unexpected character {ch!r}")
        tok = m.group(0)
        if not tok.isdigit() or not tok.isascii():
            raise err(col, f"expected a non-negative integer cluster id, got {tok!r}")
        if not expect_id:
            raise err(col, f"missing operator ('>', '<' or '=') before {tok!r}")
        cid = int(tok)
        if known is not None and cid not in known:
            raise err(col, f"unknown cluster id {cid} (known ids: {_describe_ids(known)})")
        ids.append((cid, col))
        expect_id = False
        i = m.end()
    if expect_id and ops:
        op, col = ops[-1]
        raise err(col, f"empty tier: '{op}' at the end of the line has no cluster id after it")
    return ids, ops


def _known(known_ids: Collection[int] | None) -> frozenset[int] | None:
    return None if known_ids is None else frozenset(int(k) for k in known_ids)


def parse_line(
    text: str,
    *,
    source: str = "<string>",
    line_no: int = 1,
    known_ids: Collection[int] | None = None,
) -> Pog:
    """Parse one line-syntax POG (most developed first), e.g. ``3=4>1=2>0``."""
    known = _known(known_ids)
    lines = _split_lines(text)
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    if len(lines) > 1:
        raise PogError(source, line_no + 1, 1, "line syntax holds one POG on a single line")
    line = lines[0]
    body = _strip_comment(line)
    if _FAST_LINE.fullmatch(body):  # the common, valid case: no per-character scan
        tiers = [[int(x) for x in tier.split("=")] for tier in body.split(">")]
        flat = [n for t in tiers for n in t]
        if len(flat) == len(set(flat)) and (known is None or known.issuperset(flat)):
            return Pog.from_sorted_tiers([sorted(t) for t in reversed(tiers)])
    ids, ops = _parse_chain(line, source=source, line_no=line_no, known=known, syntax="line")
    if not ids:
        raise PogError(source, line_no, 1, "empty POG: no cluster ids on this line")
    seen: dict[int, int] = {}
    for cid, col in ids:
        if cid in seen:
            raise PogError(
                source, line_no, col, f"duplicate cluster id {cid} (first at column {seen[cid]})"
            )
        seen[cid] = col
    tiers: list[list[int]] = [[ids[0][0]]]
    for (op, _), (cid, _) in zip(ops, ids[1:]):
        if op == ">":
            tiers.append([cid])
        else:
            tiers[-1].append(cid)
    return Pog.from_tiers(tiers[::-1])


class _Relations:
    """Union-find classes plus a strict order between class roots, checked as relations arrive."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.up: dict[int, set[int]] = {}  # root -> roots directly above it

    def add(self, n: int) -> None:
        if n not in self.parent:
            self.parent[n] = n
            self.up[n] = set()

    def find(self, n: int) -> int:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def reaches(self, a: int, b: int) -> bool:
        """Whether root a is strictly below root b."""
        stack, seen = [a], {a}
        while stack:
            for c in self.up[stack.pop()]:
                c = self.find(c)
                if c == b:
                    return True
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
        return False

    def implied(self, a: int, b: int) -> str | None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return f"{a}={b}"
        if self.reaches(ra, rb):
            return f"{a}<{b}"
        if self.reaches(rb, ra):
            return f"{a}>{b}"
        return None

    def less(self, a: int, b: int) -> None:
        self.up[self.find(a)].add(self.find(b))

    def merge(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.up[ra] |= self.up.pop(rb)


def parse_edges(
    text: str, *, source: str = "<string>", known_ids: Collection[int] | None = None
) -> Pog:
    """Parse an edge list (``0<1``, ``1>0``, ``1=2=3``, chains allowed), one relation per line.

    Relations are checked in file order; the first one that contradicts what earlier ones imply
    (a cycle, or ``=`` against ``<``/``>``) is reported at its own line and operator column.
    """
    known = _known(known_ids)
    rel = _Relations()
    for line_no, line in enumerate(_split_lines(text), start=1):
        ids, ops = _parse_chain(line, source=source, line_no=line_no, known=known, syntax="edges")
        for cid, _ in ids:
            rel.add(cid)
        for (op, col), (a, _), (b, _) in zip(ops, ids, ids[1:]):
            stated = f"{a}{op}{b}"
            if op == "=":
                if a == b:
                    continue
                have = rel.implied(a, b)
                if have is not None and have != stated:
                    raise PogError(
                        source,
                        line_no,
                        col,
                        f"contradiction: {stated} but earlier relations imply {have}",
                    )
                rel.merge(a, b)
                continue
            if a == b:
                raise PogError(
                    source, line_no, col, f"contradiction: cluster {a} cannot be {op} itself"
                )
            have = rel.implied(a, b)
            if have is not None and have != stated:
                kind = "contradiction" if "=" in have else "cycle"
                raise PogError(
                    source, line_no, col, f"{kind}: {stated} but earlier relations imply {have}"
                )
            if op == ">":
                rel.less(b, a)
            else:
                rel.less(a, b)
    if not rel.parent:
        raise PogError(source, 1, 1, "empty POG: no relations found")
    groups: dict[int, set[int]] = {}
    for n in rel.parent:
        groups.setdefault(rel.find(n), set()).add(n)
    less = {
        (lo, hi)
        for lo_root, ups in rel.up.items()
        for hi_root in ups
        for lo in groups[lo_root]
        for hi in groups[rel.find(hi_root)]
    }
    return Pog(frozenset(rel.parent), frozenset(less), tuple(frozenset(g) for g in groups.values()))


def parse_pog_text(
    text: str, *, source: str = "<string>", known_ids: Collection[int] | None = None
) -> Pog:
    """Parse either syntax: one content line without ``<`` is line syntax, anything else is an
    edge list (which reads a single ``>``/``=`` line identically anyway)."""
    lines = _split_lines(text)
    content = [(i, ln) for i, ln in enumerate(lines, start=1) if _strip_comment(ln).strip()]
    if len(content) == 1 and "<" not in _strip_comment(content[0][1]):
        line_no, line = content[0]
        return parse_line(line, source=source, line_no=line_no, known_ids=known_ids)
    return parse_edges(text, source=source, known_ids=known_ids)


def _content_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PogError(str(path), 1, 1, f"not UTF-8 text ({exc.reason})") from exc
    return [
        (i, ln) for i, ln in enumerate(_split_lines(text), start=1) if _strip_comment(ln).strip()
    ]


def read_pog_lines(
    pogs_path: Path,
    names_path: Path | None = None,
    *,
    known_ids: Collection[int] | None = None,
) -> dict[str, Pog]:
    """Read a file of line-syntax POGs, one annotator per content line (``pogs.txt``).

    ``names_path`` (``annotators.txt``) gives one name per content line, same count and order;
    without it names are ``annotator_1``, ...  Blank and ``#`` comment lines are skipped in both
    files, so pairing is by content line.  Every problem is a :class:`PogError` naming the file,
    line and column (a wrong name count points at the names file).
    """
    pogs_path = Path(pogs_path)
    entries = _content_lines(pogs_path)
    if not entries:
        raise PogError(str(pogs_path), 1, 1, f"no POG lines in {pogs_path.name}")
    if names_path is not None:
        names_path = Path(names_path)
        names = _content_lines(names_path)
        if len(names) != len(entries):
            where = names[-1][0] + 1 if names else 1
            raise PogError(
                str(names_path),
                where,
                1,
                f"{len(names)} annotator names but {len(entries)} POG lines in {pogs_path.name}",
            )
        labelled = [(nm.strip(), i, str(names_path)) for i, nm in names]
    else:
        labelled = [
            (f"annotator_{k}", i, str(pogs_path)) for k, (i, _) in enumerate(entries, start=1)
        ]
    out: dict[str, Pog] = {}
    first: dict[str, int] = {}
    for (name, name_line, name_src), (line_no, line) in zip(labelled, entries):
        if name in out:
            raise PogError(
                name_src,
                name_line,
                1,
                f"duplicate annotator name {name!r} (also line {first[name]})",
            )
        out[name] = parse_line(line, source=str(pogs_path), line_no=line_no, known_ids=known_ids)
        first[name] = name_line
    return out


def read_annotation_folder(
    folder: Path, *, known_ids: Collection[int] | None = None
) -> dict[str, Pog]:
    """Read every annotator's POG from a folder, keyed by annotator name, in file order.

    Layout A: ``pogs.txt`` (one line-syntax POG per line) with optional ``annotators.txt``
    (see :func:`read_pog_lines`).  Layout B: ``*.pog`` files, either syntax, named by file stem
    (read in name order, after layout A).  The layout rules are :func:`annotator_files`'.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"annotation folder not found: {folder}")
    files = annotator_files(folder)
    pogs_txt, names_txt = folder / "pogs.txt", folder / "annotators.txt"
    lines = (
        read_pog_lines(pogs_txt, names_txt if names_txt.is_file() else None, known_ids=known_ids)
        if pogs_txt.is_file()
        else {}
    )  # parsed even when it names nobody: a names file that is off says so
    out: dict[str, Pog] = {
        name: lines[name]
        if sources[0] == pogs_txt
        else read_pog_file(sources[0], known_ids=known_ids)
        for name, sources in files.items()
    }
    if not out:
        raise ValueError(f"{folder}: no POGs found (expected pogs.txt or *.pog files)")
    return out


def annotator_files(folder: Path, ignore: Collection[str] = ()) -> dict[str, tuple[Path, ...]]:
    """Every annotator a folder names, with the files its POG comes from, without parsing a POG.

    Cheap enough for a sensor tick, and it never fails on a POG's syntax: that is the annotator's
    own run to report.  Names follow :func:`read_annotation_folder` (``pogs.txt`` lines first,
    named by ``annotators.txt`` or ``annotator_k``; then ``*.pog`` stems); a name used twice is a
    :class:`PogError`.  ``ignore``: file names to leave out (e.g. simulated annotators').
    """
    folder = Path(folder)
    out: dict[str, tuple[Path, ...]] = {}
    pogs_txt, names_txt = folder / "pogs.txt", folder / "annotators.txt"
    if pogs_txt.is_file() and pogs_txt.name not in ignore:
        sources = (pogs_txt, names_txt) if names_txt.is_file() else (pogs_txt,)
        if names_txt.is_file():
            names = [(i, ln.strip()) for i, ln in _content_lines(names_txt)]
        else:
            names = [
                (i, f"annotator_{k}") for k, (i, _) in enumerate(_content_lines(pogs_txt), start=1)
            ]
        first: dict[str, int] = {}
        for line_no, name in names:
            if name in out:
                raise PogError(
                    str(sources[-1]),
                    line_no,
                    1,
                    f"duplicate annotator name {name!r} (also line {first[name]})",
                )
            out[name], first[name] = sources, line_no
    for path in sorted(folder.glob("*.pog")):
        if path.name.startswith("."):  # a writer's hidden temporary file, not an annotator
            continue
        if path.name in ignore or not path.is_file():
            continue
        if path.stem in out:
            raise PogError(
                str(path), 1, 1, f"annotator name {path.stem!r} is already used by {pogs_txt}"
            )
        out[path.stem] = (path,)
    return out


def read_annotator(folder: Path, name: str, *, known_ids: Collection[int] | None = None) -> Pog:
    """One annotator's POG from a folder (:func:`annotator_files` says where it lives); only its
    own file is parsed, so another annotator's broken file does not stop it."""
    sources = annotator_files(Path(folder)).get(name)
    if sources is None:
        raise FileNotFoundError(
            f"{folder}: no annotation file for annotator {name!r} "
            "(expected <name>.pog or a line of pogs.txt)"
        )
    if sources[0].name == "pogs.txt":
        names = sources[1] if len(sources) > 1 else None
        return read_pog_lines(sources[0], names, known_ids=known_ids)[name]
    return read_pog_file(sources[0], known_ids=known_ids)


def read_pog_file(path: Path, *, known_ids: Collection[int] | None = None) -> Pog:
    """One annotator's POG file (either syntax); errors name the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PogError(str(path), 1, 1, f"not UTF-8 text ({exc.reason})") from exc
    return parse_pog_text(text, source=str(path), known_ids=known_ids)
