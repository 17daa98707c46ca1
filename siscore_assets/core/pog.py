"""Partial order graphs (POGs) over cluster ids: parsing, validation, paths, agreement, ensemble.

A POG is what a human annotator says about the Stage-1 clusters: ``a > b`` (a is more
developed), ``a = b`` (tie), or nothing (incomparable).  Stage 2 turns several of them into one
robust POG; Stage 3 trains on every least->most path through it.

Two text syntaxes are read:

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
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = [
    "EnsembleResult",
    "Pog",
    "PogError",
    "choose_tiers",
    "ensemble",
    "ensemble_ranks",
    "kendall_tau_b_matrix",
    "parse_edges",
    "parse_line",
    "parse_pog_text",
    "rank_matrix",
    "read_annotation_folder",
    "read_pog_file",
    "read_pog_lines",
    "reweight_fast",
    "reweight_reference",
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


# --------------------------------------------------------------------------------------------
# The Pog value
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Pog:
    """An immutable POG in canonical form, so that equal orders compare (and hash) equal.

    ``less`` holds ``(lo, hi)`` pairs, lo strictly less developed than hi, **transitively
    reduced over equivalence classes and expanded to members**: for every covering pair of
    classes ``L < H`` (no class strictly between them) it holds every ``(l, h)`` with ``l`` in
    ``L`` and ``h`` in ``H``.  Use :meth:`is_less` for the full (transitive) relation.
    ``equal`` holds every equivalence class (singletons included), each sorted class ordered by
    its smallest id.  The constructor accepts any consistent description (redundant pairs,
    pairs between any members, missing singleton classes) and canonicalises it; it raises
    ``ValueError`` on unknown members, overlapping classes, pairs inside a class, or cycles.
    """

    nodes: frozenset[int]
    less: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    equal: tuple[frozenset[int], ...] = ()

    def __post_init__(self) -> None:
        nodes = frozenset(int(n) for n in self.nodes)
        class_of: dict[int, int] = {}
        groups: list[list[int]] = []
        for grp in self.equal:
            members = sorted({int(n) for n in grp})
            for n in members:
                if n not in nodes:
                    raise ValueError(f"equivalence class member {n} is not a node")
                if n in class_of:
                    raise ValueError(f"cluster {n} is in two equivalence classes")
                class_of[n] = len(groups)
            if members:
                groups.append(members)
        for n in sorted(nodes - class_of.keys()):
            class_of[n] = len(groups)
            groups.append([n])
        order = sorted(range(len(groups)), key=lambda g: groups[g][0])
        new_index = {old: new for new, old in enumerate(order)}
        classes = [groups[g] for g in order]
        class_of = {n: new_index[g] for n, g in class_of.items()}

        succ: list[set[int]] = [set() for _ in classes]
        for lo, hi in self.less:
            lo, hi = int(lo), int(hi)
            for n in (lo, hi):
                if n not in nodes:
                    raise ValueError(f"less pair ({lo}, {hi}) names {n}, which is not a node")
            a, b = class_of[lo], class_of[hi]
            if a == b:
                raise ValueError(f"less pair ({lo}, {hi}) lies inside one equivalence class")
            succ[a].add(b)
        cover = _transitive_reduction(succ)  # raises on a cycle
        less = frozenset(
            (lo, hi) for a, outs in enumerate(cover) for b in outs for lo in classes[a]
            for hi in classes[b]
        )
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "less", less)
        object.__setattr__(self, "equal", tuple(frozenset(c) for c in classes))

    # ---- construction helpers ------------------------------------------------------------

    @classmethod
    def from_tiers(cls, tiers: Sequence[Iterable[int]]) -> Pog:
        """A total preorder from tiers listed least developed first (as in tier paths)."""
        tiers = [sorted({int(n) for n in t}) for t in tiers]
        if any(not t for t in tiers):
            raise ValueError("empty tier")
        nodes = [n for t in tiers for n in t]
        if len(nodes) != len(set(nodes)):
            raise ValueError("a cluster appears in two tiers")
        return cls._chain(tiers)

    @classmethod
    def _chain(cls, tiers: list[list[int]]) -> Pog:
        """Build a total preorder already in canonical form, skipping the general
        canonicalisation and pre-filling the caches (parsing 100k POGs must stay cheap)."""
        less = frozenset([(lo, hi) for t0, t1 in zip(tiers, tiers[1:]) for lo in t0 for hi in t1])
        order = sorted(range(len(tiers)), key=lambda t: tiers[t][0])
        pos = {t: i for i, t in enumerate(order)}
        self = object.__new__(cls)
        object.__setattr__(self, "nodes", frozenset([n for t in tiers for n in t]))
        object.__setattr__(self, "less", less)
        object.__setattr__(self, "equal", tuple([frozenset(tiers[t]) for t in order]))
        d = self.__dict__  # cached_property storage
        d["_classes"] = [tiers[t] for t in order]
        d["_class_of"] = {n: pos[t] for t, tier in enumerate(tiers) for n in tier}
        d["_depth"] = list(order)  # class i sits on tier order[i]
        d["_succ"] = [[pos[t + 1]] if t + 1 < len(tiers) else [] for t in order]
        d["_pred"] = [[pos[t - 1]] if t > 0 else [] for t in order]
        d["_topo"] = [pos[t] for t in range(len(tiers))]
        return self

    # ---- derived structure (cached; computed once per instance) --------------------------

    @cached_property
    def _classes(self) -> list[list[int]]:
        return [sorted(c) for c in self.equal]

    @cached_property
    def _class_of(self) -> dict[int, int]:
        return {n: i for i, c in enumerate(self.equal) for n in c}

    @cached_property
    def _succ(self) -> list[list[int]]:
        """Covering successors (more developed classes) per class, sorted."""
        out: list[set[int]] = [set() for _ in self.equal]
        for lo, hi in self.less:
            out[self._class_of[lo]].add(self._class_of[hi])
        return [sorted(s) for s in out]

    @cached_property
    def _pred(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.equal]
        for a, outs in enumerate(self._succ):
            for b in outs:
                out[b].append(a)
        return out

    @cached_property
    def _topo(self) -> list[int]:
        return _toposort(self._succ)

    @cached_property
    def _reach(self) -> list[int]:
        """Bitset of classes strictly above each class."""
        reach = [0] * len(self.equal)
        for a in reversed(self._topo):
            r = 0
            for b in self._succ[a]:
                r |= reach[b] | (1 << b)
            reach[a] = r
        return reach

    @cached_property
    def _depth(self) -> list[int]:
        """Longest-path depth of each class from a source (0 = nothing below it)."""
        depth = [0] * len(self.equal)
        for a in self._topo:
            for b in self._succ[a]:
                depth[b] = max(depth[b], depth[a] + 1)
        return depth

    # ---- queries -------------------------------------------------------------------------

    def is_less(self, a: int, b: int) -> bool:
        """Whether a is strictly less developed than b (transitively)."""
        ca, cb = self._class_of.get(a), self._class_of.get(b)
        if ca is None or cb is None:
            return False
        return bool(self._reach[ca] >> cb & 1)

    def is_total(self) -> bool:
        """Whether every two mentioned clusters are comparable (a total preorder)."""
        # one source and out-degree <= 1 everywhere makes the covering graph a single chain
        return len(self._sources) <= 1 and all(len(outs) <= 1 for outs in self._succ)

    def to_line(self) -> str:
        """Line syntax, most developed first; only a total preorder has one."""
        if not self.nodes:
            raise ValueError("an empty POG has no line form")
        if not self.is_total():
            raise ValueError("POG is not a total preorder; use to_edges()")
        order = sorted(range(len(self.equal)), key=lambda a: -self._depth[a])
        return ">".join("=".join(map(str, self._classes[a])) for a in order)

    def to_edges(self) -> str:
        """Edge-list text: covering ``lo<hi`` lines between class representatives (smallest id)
        sorted by (lo, hi), then ``a=b=c`` lines for classes with several members, then bare
        ids for clusters that have no relation at all.  Ends with a newline."""
        reps = [c[0] for c in self._classes]
        lines = sorted((reps[a], reps[b]) for a, outs in enumerate(self._succ) for b in outs)
        out = [f"{lo}<{hi}" for lo, hi in lines]
        out += ["=".join(map(str, c)) for c in self._classes if len(c) > 1]
        out += [
            str(c[0]) for a, c in enumerate(self._classes)
            if len(c) == 1 and not self._succ[a] and not self._pred[a]
        ]
        return "\n".join(out) + ("\n" if out else "")

    def with_bottom(self, cluster_id: int) -> Pog:
        """Add a cluster (the uninhabited one, by convention) below every other cluster."""
        cluster_id = int(cluster_id)
        if cluster_id in self.nodes:
            raise ValueError(f"cluster {cluster_id} is already in the POG")
        sources = [c for a, c in enumerate(self._classes) if not self._pred[a]]
        less = set(self.less) | {(cluster_id, n) for c in sources for n in c}
        return Pog(self.nodes | {cluster_id}, frozenset(less), (*self.equal, frozenset({cluster_id})))

    def count_tier_paths(self) -> int:
        """Exact number of source->sink paths over covering edges (may be astronomically large)."""
        counts = self._path_counts
        return sum(counts[a] for a in self._sources)

    @cached_property
    def _sources(self) -> list[int]:
        return [a for a in range(len(self.equal)) if not self._pred[a]]

    @cached_property
    def _path_counts(self) -> list[int]:
        counts = [0] * len(self.equal)
        for a in reversed(self._topo):
            counts[a] = sum(counts[b] for b in self._succ[a]) if self._succ[a] else 1
        return counts

    def tier_paths(self, max_paths: int = 10_000, seed: int = 0) -> list[list[list[int]]]:
        """Every least->most path through the condensed DAG, for Stage-3 training.

        Paths follow covering edges only (no shortcuts that skip a tier), from a source class
        (nothing below it) to a sink class (nothing above it); an isolated class is a one-tier
        path.  Paths come in a fixed lexicographic order (sources, then successors, by smallest
        id).  When there are more than ``max_paths``, a uniform sample *without replacement* of
        ``max_paths`` of them is drawn with ``numpy.random.default_rng(seed)`` and returned in
        that same lexicographic order; the sample depends only on the POG and ``seed``.
        """
        if max_paths < 1:
            raise ValueError("max_paths must be >= 1")
        total = self.count_tier_paths()
        cls = self._classes
        if total <= max_paths:
            paths: list[list[list[int]]] = []
            for s in self._sources:  # iterative DFS: deep POGs must not hit the recursion limit
                stack: list[tuple[int, int]] = [(s, 0)]
                while stack:
                    node, k = stack[-1]
                    outs = self._succ[node]
                    if not outs and k == 0:
                        paths.append([list(cls[c]) for c, _ in stack])
                    if k < len(outs):
                        stack[-1] = (node, k + 1)
                        stack.append((outs[k], 0))
                    else:
                        stack.pop()
            return paths
        indices = _sample_indices(total, max_paths, np.random.default_rng(seed))
        return [[list(cls[c]) for c in self._unrank_path(i)] for i in indices]

    def _unrank_path(self, index: int) -> list[int]:
        counts = self._path_counts
        for s in self._sources:
            if index < counts[s]:
                node = s
                break
            index -= counts[s]
        else:  # pragma: no cover - guarded by the caller
            raise IndexError(index)
        path = [node]
        while self._succ[node]:
            for b in self._succ[node]:
                if index < counts[b]:
                    node = b
                    break
                index -= counts[b]
            path.append(node)
        return path

    def rank_vector(self, ids: Sequence[int]) -> np.ndarray:
        """Float ranks over ``ids`` (1 = least developed), ties at their average rank.

        The tier level of a cluster is the longest-path depth of its class in the condensed DAG
        (for a total preorder: its tier index), so incomparable clusters at the same depth tie.
        Ranks are taken among the ``ids`` that the POG mentions; the others are NaN.
        """
        depth, class_of = self._depth, self._class_of
        level = np.fromiter(
            (depth[class_of[i]] if i in class_of else -1 for i in ids), dtype=np.int64,
            count=len(ids),
        )
        present = level >= 0
        counts = np.bincount(level[present]) if present.any() else np.zeros(1, np.int64)
        below = np.cumsum(counts) - counts  # clusters on strictly lower levels
        avg = below + (counts + 1) / 2.0  # average of ranks below+1 .. below+count
        return np.where(present, avg[np.where(present, level, 0)], np.nan)

    def __repr__(self) -> str:
        if self.nodes and self.is_total():
            return f"Pog({self.to_line()!r})"
        return f"Pog(edges={self.to_edges().strip().replace(chr(10), '; ')!r})"


def _toposort(succ: list[list[int]] | list[set[int]]) -> list[int]:
    indeg = [0] * len(succ)
    for outs in succ:
        for b in outs:
            indeg[b] += 1
    ready = [a for a in range(len(succ)) if indeg[a] == 0]
    order: list[int] = []
    while ready:
        a = ready.pop()
        order.append(a)
        for b in succ[a]:
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    if len(order) != len(succ):
        raise ValueError("the 'less' relation has a cycle")
    return order


def _transitive_reduction(succ: list[set[int]]) -> list[list[int]]:
    order = _toposort(succ)
    reach = [0] * len(succ)
    cover: list[list[int]] = [[] for _ in succ]
    for a in reversed(order):
        below = 0
        for b in succ[a]:
            below |= reach[b]
        cover[a] = sorted(b for b in succ[a] if not below >> b & 1)
        reach[a] = below | sum(1 << b for b in succ[a])
    return cover


def _sample_indices(total: int, k: int, rng: np.random.Generator) -> list[int]:
    """k distinct uniform indices in [0, total), sorted; total may exceed int64."""
    if total <= np.iinfo(np.int64).max:
        return sorted(int(i) for i in rng.choice(total, size=k, replace=False))
    words = -(-total.bit_length() // 32)
    mask = (1 << total.bit_length()) - 1
    chosen: set[int] = set()
    while len(chosen) < k:
        r = 0
        for w in rng.integers(0, 1 << 32, size=words, dtype=np.uint64):
            r = (r << 32) | int(w)
        r &= mask
        if r < total:
            chosen.add(r)
    return sorted(chosen)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


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
                raise err(col, "'<' is not allowed in line syntax (most developed first, "
                               "'>' and '='); use the edge-list syntax for '<'")
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
            return Pog._chain([sorted(t) for t in reversed(tiers)])
    ids, ops = _parse_chain(line, source=source, line_no=line_no, known=known, syntax="line")
    if not ids:
        raise PogError(source, line_no, 1, "empty POG: no cluster ids on this line")
    seen: dict[int, int] = {}
    for cid, col in ids:
        if cid in seen:
            raise PogError(source, line_no, col,
                           f"duplicate cluster id {cid} (first at column {seen[cid]})")
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
        ids, ops = _parse_chain(line, source=source, line_no=line_no, known=known,
                                syntax="edges")
        for cid, _ in ids:
            rel.add(cid)
        for (op, col), (a, _), (b, _) in zip(ops, ids, ids[1:]):
            stated = f"{a}{op}{b}"
            if op == "=":
                if a == b:
                    continue
                have = rel.implied(a, b)
                if have is not None and have != stated:
                    raise PogError(source, line_no, col,
                                   f"contradiction: {stated} but earlier relations imply {have}")
                rel.merge(a, b)
                continue
            if a == b:
                raise PogError(source, line_no, col,
                               f"contradiction: cluster {a} cannot be {op} itself")
            have = rel.implied(a, b)
            if have is not None and have != stated:
                kind = "contradiction" if "=" in have else "cycle"
                raise PogError(source, line_no, col,
                               f"{kind}: {stated} but earlier relations imply {have}")
            if op == ">":
                rel.less(b, a)
            else:
                rel.less(a, b)
    if not rel.parent:
        raise PogError(source, 1, 1, "empty POG: no relations found")
    groups: dict[int, set[int]] = {}
    for n in rel.parent:
        groups.setdefault(rel.find(n), set()).add(n)
    less = {(lo, hi) for lo_root, ups in rel.up.items() for hi_root in ups
            for lo in groups[lo_root] for hi in groups[rel.find(hi_root)]}
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
    return [(i, ln) for i, ln in enumerate(_split_lines(text), start=1)
            if _strip_comment(ln).strip()]


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
            raise PogError(str(names_path), where, 1,
                           f"{len(names)} annotator names but {len(entries)} POG lines "
                           f"in {pogs_path.name}")
        labelled = [(nm.strip(), i, str(names_path)) for i, nm in names]
    else:
        labelled = [(f"annotator_{k}", i, str(pogs_path))
                    for k, (i, _) in enumerate(entries, start=1)]
    out: dict[str, Pog] = {}
    first: dict[str, int] = {}
    for (name, name_line, name_src), (line_no, line) in zip(labelled, entries):
        if name in out:
            raise PogError(name_src, name_line, 1,
                           f"duplicate annotator name {name!r} (also line {first[name]})")
        out[name] = parse_line(line, source=str(pogs_path), line_no=line_no,
                               known_ids=known_ids)
        first[name] = name_line
    return out


def read_annotation_folder(
    folder: Path, *, known_ids: Collection[int] | None = None
) -> dict[str, Pog]:
    """Read every annotator's POG from a folder, keyed by annotator name, in file order.

    Layout A: ``pogs.txt`` (one line-syntax POG per line) with optional ``annotators.txt``
    (see :func:`read_pog_lines`).  Layout B: ``*.pog`` files, either syntax, named by file stem
    (read in name order, after layout A).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"annotation folder not found: {folder}")
    out: dict[str, Pog] = {}
    origin: dict[str, str] = {}
    pogs_txt = folder / "pogs.txt"
    if pogs_txt.is_file():
        names_txt = folder / "annotators.txt"
        out = read_pog_lines(pogs_txt, names_txt if names_txt.is_file() else None,
                             known_ids=known_ids)
        origin = {name: str(pogs_txt) for name in out}
    for path in sorted(folder.glob("*.pog")):
        name = path.stem
        if name in out:
            raise PogError(str(path), 1, 1,
                           f"annotator name {name!r} is already used by {origin[name]}")
        out[name] = read_pog_file(path, known_ids=known_ids)
        origin[name] = str(path)
    if not out:
        raise ValueError(f"{folder}: no POGs found (expected pogs.txt or *.pog files)")
    return out


def read_pog_file(path: Path, *, known_ids: Collection[int] | None = None) -> Pog:
    """One annotator's POG file (either syntax); errors name the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PogError(str(path), 1, 1, f"not UTF-8 text ({exc.reason})") from exc
    return parse_pog_text(text, source=str(path), known_ids=known_ids)


# --------------------------------------------------------------------------------------------
# Agreement and ensemble
# --------------------------------------------------------------------------------------------


def rank_matrix(pogs: Sequence[Pog], ids: Sequence[int]) -> np.ndarray:
    """Stack ``rank_vector`` of every POG: (A, C), NaN where an annotator is silent.

    Stored with the longer axis contiguous (column-major when annotators outnumber clusters),
    the layout :func:`reweight_fast` streams through BLAS without a transpose."""
    out = np.empty((len(pogs), len(ids)), order="F" if len(pogs) > len(ids) else "C")
    for a, pog in enumerate(pogs):
        out[a] = pog.rank_vector(ids)
    return out


def kendall_tau_b_matrix(rank_vectors: np.ndarray) -> np.ndarray:
    """Pairwise Kendall tau-b between annotators over the clusters both ranked.

    Computed for all pairs at once from pairwise sign matrices; equals
    ``scipy.stats.kendalltau(x, y, variant='b')`` on the shared clusters (NaN where that is
    undefined: fewer than two shared clusters, or one side all ties).  The diagonal is 1.
    Memory is O(A * C^2).
    """
    r = np.asarray(rank_vectors, dtype=float)
    if r.ndim != 2:
        raise ValueError("rank_vectors must be 2-D (annotators, clusters)")
    c_n = r.shape[1]
    valid = ~np.isnan(r)
    filled = np.where(valid, r, 0.0)
    iu = np.triu_indices(c_n, k=1)
    sign = np.sign(filled[:, iu[0]] - filled[:, iu[1]])  # (A, P) over cluster pairs i<j
    both = (valid[:, iu[0]] & valid[:, iu[1]]).astype(float)
    sign *= both
    untied = np.abs(sign)
    num = sign @ sign.T
    den_x = untied @ both.T  # pairs untied in row annotator, among clusters both ranked
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = num / np.sqrt(den_x * den_x.T)
    tau[(den_x == 0) | (den_x.T == 0)] = np.nan
    np.fill_diagonal(tau, 1.0)
    return np.clip(tau, -1.0, 1.0)


@dataclass
class EnsembleResult:
    """The ensembled POG and how it was reached.

    ``consensus`` is in [0, 1] over ``ids`` (higher = more developed); ``tiers`` are least
    developed first, each a sorted id list; ``weights`` (sum 1) follow ``names``.
    ``disagreement`` (over ``ids``) is the weighted RMS distance of the annotators' normalised
    ranks from the consensus; ``pruned`` lists the ids left out of the POG for it (most
    disputed first; empty unless pruning was asked for).
    """

    pog: Pog
    weights: np.ndarray
    consensus: np.ndarray
    tiers: list[list[int]]
    iterations: int
    names: list[str]
    converged: bool = True
    disagreement: np.ndarray | None = None
    pruned: list[int] = field(default_factory=list)


def _normalise_ranks(ranks: np.ndarray) -> np.ndarray:
    """Map each row's ranks onto [0, 1] (1 = most developed among what it ranked)."""
    r = np.asarray(ranks, dtype=float)
    lo = np.nanmin(r, axis=1, keepdims=True)
    hi = np.nanmax(r, axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (r - lo) / np.where(span > 0, span, 1.0), 0.5)
    return np.where(np.isnan(r), np.nan, out)


# The robust scale never falls below this share of the first round's mean squared distance:
# without a floor, a median of 0 (half the annotators identical) flips between "every outlier
# at weight 0" and a fallback scale, and the iteration oscillates instead of converging.
SCALE_FLOOR = 0.01


def _weights_from_d2(d2: np.ndarray, floor: float) -> np.ndarray:
    """``w ∝ exp(-d^2 / sigma^2)``, ``sigma^2 = max(median(d^2), floor)`` (robust scale), sum 1.

    ``floor`` ~ 0 (every annotator identical at the start) gives equal weights.  Shifting by
    ``min(d^2)`` changes nothing after normalising but avoids underflow.
    """
    d2 = np.asarray(d2, dtype=np.float64)
    if floor <= 1e-12:
        return np.full(len(d2), 1.0 / len(d2))
    sigma2 = max(float(np.median(d2)), floor)
    w = np.exp(-(d2 - d2.min()) / sigma2)
    return w / w.sum()


def reweight_reference(
    x: np.ndarray, mask: np.ndarray, *, tol: float = 1e-6, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """The robust re-weighting written plainly in float64: the specification the fast path
    (:func:`reweight_fast`) is tested against, and the benchmark's baseline.

    ``x`` (A, C): normalised ranks (anything where ``mask`` is False); returns
    ``(weights, consensus, iterations, converged)``.
    """
    m = np.asarray(mask, dtype=bool)
    x = np.where(m, np.asarray(x, dtype=np.float64), 0.0)
    mf = m.astype(np.float64)
    counts = mf.sum(axis=1)
    plain = x.sum(axis=0) / mf.sum(axis=0)

    def consensus_of(w: np.ndarray) -> np.ndarray:
        den = w @ mf
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (w @ x) / den
        return np.where(den > 0, c, plain)  # ranked only by zero-weight annotators: plain mean

    w = np.full(len(x), 1.0 / len(x))
    cons = consensus_of(w)
    floor = -1.0
    for it in range(1, max_iter + 1):
        d2 = (((x - cons) ** 2) * mf).sum(axis=1) / counts  # squared RMS distance per annotator
        if it == 1:
            floor = SCALE_FLOOR * float(d2.mean())
        w = _weights_from_d2(d2, floor)
        new = consensus_of(w)
        step = float(np.linalg.norm(new - cons))
        cons = new
        if step < tol:
            return w, cons, it, True
    return w, cons, max_iter, False


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # ~2 ms to build; limiting through it then costs ~10 us


def _median(v: np.ndarray) -> float:
    """``np.median`` of a 1-D array via one ``np.partition`` (np.median costs ~5x more)."""
    n = len(v)
    h = n // 2
    part = np.partition(v, h)
    if n % 2:
        return float(part[h])
    return (float(part[:h].max()) + float(part[h])) / 2.0


def reweight_fast(
    x: np.ndarray, mask: np.ndarray | None = None, *, tol: float = 1e-6, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Same iteration as :func:`reweight_reference`, built for 10^5 annotators or 10^4 clusters.

    The (A, C) matrix is copied once to float32, centred on its column means, keeping its
    layout: pass it with the longer axis contiguous (:func:`rank_matrix` returns many-annotator
    matrices column-major) -- a 100,000 x 22 row-major float32 matrix-vector product is ~60x
    slower in multi-threaded OpenBLAS, and a row-major input is transposed here (~10 ms).
    Each round is then two BLAS matrix-vector products -- ``X e`` for the distances, via
    ``|x - c|^2 = |x - mu|^2 - 2 (x - mu).e + |e|^2`` with ``e = c - mu`` (masked likewise),
    and ``w X`` for the consensus -- plus an O(A) partition (median) and exp, in float32; no
    Python loop over annotators.  Centring keeps the float32 cancellation small; the consensus
    and the convergence test stay float64.  ``mask=None`` means complete rankings and skips
    the mask products.  BLAS runs single-threaded here: these products are memory-bound, and
    OpenBLAS's threads only add hand-off latency (badly so on a loaded 2-core machine).
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        return _reweight_fast(np.asarray(x), mask, tol, max_iter)


def _reweight_fast(
    x: np.ndarray, mask: np.ndarray | None, tol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    a_n, c_n = x.shape
    order = "F" if a_n > c_n else "C"
    if mask is None or bool(np.all(mask)):
        mf = None
        x64 = np.asarray(x, dtype=np.float64)
        # column means by BLAS (the sum over a row-major axis is slow); any centre is exact
        # here because the same float32 centre is added back to the consensus
        mu32 = ((np.ones(a_n) @ x64) / a_n).astype(np.float32)
        xc = np.empty((a_n, c_n), dtype=np.float32, order=order)
        np.subtract(x64, mu32, out=xc, casting="same_kind")  # one fused pass: centre + float32
        mu = mu32.astype(np.float64)
        counts = np.float32(c_n)
    else:
        m = np.asarray(mask, dtype=bool)
        mf = np.array(m, dtype=np.float32, order=order)
        mu = np.where(m, x, 0.0).sum(axis=0) / m.sum(axis=0)  # also the plain-mean fallback
        xc = np.array(np.where(m, x - mu, 0.0), dtype=np.float32, order=order)
        counts = m.sum(axis=1).astype(np.float32)
    sq = np.einsum("ac,ac->a", xc, xc)  # |x_a - mu|^2 over what a ranked (float32)

    def consensus_of(w32: np.ndarray) -> np.ndarray:
        num = (w32 @ xc).astype(np.float64)
        if mf is None:
            return mu + num / float(w32.sum(dtype=np.float64))
        den = (w32 @ mf).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, mu + num / den, mu)

    w = np.full(a_n, 1.0 / a_n, dtype=np.float32)
    cons = consensus_of(w)
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        e = cons - mu  # the consensus in centred coordinates
        d2 = xc @ (-2.0 * e).astype(np.float32)
        d2 += sq
        d2 += np.float32(e @ e) if mf is None else mf @ (e * e).astype(np.float32)
        d2 /= counts  # may dip below 0 by rounding: harmless, only d2 - min(d2) is used
        if it == 1:
            floor = SCALE_FLOOR * float(d2.mean(dtype=np.float64))
        if floor <= 1e-12:
            w = np.full(a_n, 1.0 / a_n, dtype=np.float32)
        else:
            sigma2 = max(_median(d2), floor)
            d2 -= d2.min()
            d2 *= np.float32(-1.0 / sigma2)
            w = np.exp(d2, out=d2)
        new = consensus_of(w)
        step = float(np.linalg.norm(new - cons))
        cons = new
        if step < tol:
            break
    else:
        it, step = max_iter, np.inf
    w64 = w.astype(np.float64)
    return w64 / w64.sum(), cons, it, step < tol


def ensemble_ranks(
    ranks: np.ndarray,
    ids: Sequence[int],
    *,
    names: Sequence[str] | None = None,
    n_tiers: int | None = None,
    prune: int = 0,
    tol: float = 1e-6,
    max_iter: int = 1000,
    fast: bool = True,
) -> EnsembleResult:
    """Robust re-weighted consensus of an (A, C) rank matrix (NaN = not ranked); see ensemble."""
    r = np.asarray(ranks, dtype=float)
    ids = [int(i) for i in ids]
    if r.ndim != 2 or r.shape[1] != len(ids):
        raise ValueError(f"ranks must be (annotators, {len(ids)}), got {r.shape}")
    a_n = r.shape[0]
    if a_n == 0:
        raise ValueError("ensemble needs at least one POG")
    names = [f"annotator_{k}" for k in range(1, a_n + 1)] if names is None else list(names)
    if len(names) != a_n:
        raise ValueError(f"{len(names)} names for {a_n} POGs")
    mask = ~np.isnan(r)
    empty = ~mask.any(axis=1)
    if empty.any():
        raise ValueError(f"POG(s) {[names[i] for i in np.flatnonzero(empty)]} rank none of ids")
    unranked = ~mask.any(axis=0)
    if unranked.any():
        raise ValueError(f"no POG ranks cluster(s) {[ids[i] for i in np.flatnonzero(unranked)]}")
    if not 0 <= prune <= len(ids) - 1:
        raise ValueError(f"prune must be in 0..{len(ids) - 1} (clusters - 1), got {prune}")
    x = np.where(mask, _normalise_ranks(r), 0.0)
    if fast:
        w, cons, it, converged = reweight_fast(x, None if mask.all() else mask, tol=tol,
                                               max_iter=max_iter)
    else:
        w, cons, it, converged = reweight_reference(x, mask, tol=tol, max_iter=max_iter)
    m = mask.astype(float)
    wm = w @ m
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt((w @ (((x - cons) ** 2) * m)) / wm)
    spread = np.where(wm > 0, spread, 0.0)
    keep = np.ones(len(ids), dtype=bool)
    pruned: list[int] = []
    if prune:
        worst = np.argsort(-spread, kind="stable")[:prune]
        keep[worst] = False
        pruned = [ids[i] for i in worst]
    kept = np.flatnonzero(keep)
    tiers_idx = choose_tiers(cons[kept], n_tiers=n_tiers, ranks=r[:, kept], weights=w)
    tiers = [sorted(ids[kept[i]] for i in t) for t in tiers_idx]
    return EnsembleResult(
        pog=Pog.from_tiers(tiers), weights=w, consensus=cons, tiers=tiers, iterations=it,
        names=names, converged=converged, disagreement=spread, pruned=pruned,
    )


def ensemble(
    pogs: Sequence[Pog],
    ids: Sequence[int],
    *,
    names: Sequence[str] | None = None,
    n_tiers: int | None = None,
    prune: int = 0,
    tol: float = 1e-6,
    max_iter: int = 1000,
    fast: bool = True,
) -> EnsembleResult:
    """Ensemble annotators' POGs into one tiered POG that down-weights outlying annotators.

    1. Each POG's ``rank_vector`` over ``ids`` is normalised to [0, 1] over the clusters it
       ranks; clusters it does not mention are *masked* (not imputed): they count neither in
       its distance nor in the consensus for that cluster.
    2. Start from equal weights; consensus = weighted masked mean.  Each round,
       ``d_a^2`` = mean squared difference to the consensus over the clusters ``a`` ranked,
       ``sigma^2 = median(d^2)`` (robust scale; floored at ``SCALE_FLOOR`` times the first
       round's mean ``d^2``, equal weights when every annotator is identical) and
       ``w_a ∝ exp(-d_a^2 / sigma^2)`` --
       weight *falls* with distance (the ``1 - exp(...)`` variant would reward outliers).
       Stop when ``||Δconsensus||_2 < tol`` or after ``max_iter`` rounds (``converged`` says
       which).  ``fast`` picks :func:`reweight_fast` (float32 BLAS) over
       :func:`reweight_reference` (plain float64); they agree to ~1e-6.
    3. Optional pruning: the ``prune`` clusters with the largest weighted RMS disagreement
       (annotators' normalised ranks around the consensus) are left out of the output POG --
       Stage 3 then trains on no path through them.
    4. Tiers: :func:`choose_tiers` on the consensus -- exact 1-D k-means for each k, k chosen
       to maximise the weighted mean Kendall tau-b between the tiering and the annotators
       (``n_tiers`` fixes k instead); the output POG is the total preorder of those tiers.
    """
    names = list(names) if names is not None else None
    return ensemble_ranks(rank_matrix(pogs, ids), ids, names=names, n_tiers=n_tiers,
                          prune=prune, tol=tol, max_iter=max_iter, fast=fast)


def _kmeans_1d_dp(
    v: np.ndarray, k_max: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exact 1-D k-means of sorted rows by dynamic programming, for every k in 1..k_max at once.

    ``v`` is (B, n), each row sorted.  ``allowed[b, i]`` says a segment may start at i (so
    equal values are never split).  Returns the minimal SSE per row and k, shape (B, k_max),
    and the back-pointers needed by :func:`_segments`.  O(B * k_max * n^2).
    """
    b_n, n = v.shape
    s1 = np.concatenate([np.zeros((b_n, 1)), np.cumsum(v, axis=1)], axis=1)
    s2 = np.concatenate([np.zeros((b_n, 1)), np.cumsum(v * v, axis=1)], axis=1)
    i_idx, j_idx = np.triu_indices(n + 1, k=1)
    cost = np.full((b_n, n + 1, n + 1), np.inf)  # cost[b, i, j]: SSE of v[b, i:j]
    seg = (s2[:, j_idx] - s2[:, i_idx]) - (s1[:, j_idx] - s1[:, i_idx]) ** 2 / (j_idx - i_idx)
    cost[:, i_idx, j_idx] = np.maximum(seg, 0.0)
    start_ok = np.ones((b_n, n + 1), dtype=bool)
    if allowed is not None:
        start_ok[:, :n] = allowed
    start_ok[:, 0] = False  # after the first segment nothing starts at 0
    split_cost = np.where(start_ok[:, :, None], cost, np.inf)
    best = cost[:, 0, :].copy()  # one segment covering v[:, :j]
    sse = np.full((b_n, k_max), np.inf)
    sse[:, 0] = best[:, n]
    back: list[np.ndarray] = []
    for k in range(1, k_max):
        cand = best[:, :, None] + split_cost  # (B, i, j): last segment v[i:j]
        arg = np.argmin(cand, axis=1)
        best = np.take_along_axis(cand, arg[:, None, :], axis=1)[:, 0, :]
        back.append(arg)
        sse[:, k] = best[:, n]
    return sse, back


def _segments(back: list[np.ndarray], k: int, n: int) -> list[int]:
    """Start indices of the k optimal segments of row 0, from the DP back-pointers."""
    starts: list[int] = []
    j = n
    for arg in reversed(back[: k - 1]):
        j = int(arg[0, j])
        starts.append(j)
    return [0, *reversed(starts)]


def _tau_b_against(candidates: np.ndarray, ranks: np.ndarray, block: int = 8192) -> np.ndarray:
    """Kendall tau-b of each candidate rank vector (K, C; complete) against each row of
    ``ranks`` (A, C; NaN = not ranked), over the clusters the row ranks: shape (A, K)."""
    r = np.asarray(ranks, dtype=float)
    iu = np.triu_indices(r.shape[1], k=1)
    sx = np.sign(candidates[:, iu[0]] - candidates[:, iu[1]])  # (K, P)
    out = np.empty((r.shape[0], len(candidates)))
    for lo in range(0, r.shape[0], block):
        chunk = r[lo:lo + block]
        valid = ~np.isnan(chunk)
        both = (valid[:, iu[0]] & valid[:, iu[1]]).astype(np.float32)
        sr = np.sign(np.where(valid, chunk, 0.0)[:, iu[0]] - np.where(valid, chunk, 0.0)[:, iu[1]])
        sr = sr.astype(np.float32) * both
        num = sr @ sx.T.astype(np.float32)
        den = np.abs(sr).sum(axis=1, keepdims=True) * (both @ np.abs(sx).T.astype(np.float32))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:lo + block] = np.where(den > 0, num / np.sqrt(den), np.nan)
    return out


# Above this many clusters the exact DP (O(k n^2) time and memory) gives way to Lloyd's 1-D
# k-means and per-annotator scipy tau-b (O(n log n)): 10,000 clusters would need ~3 GB.
EXACT_TIERS_MAX = 1500


def _choose_tiers_large(
    v: np.ndarray, distinct: int, *, n_tiers: int | None, max_tiers: int,
    ranks: np.ndarray | None, weights: np.ndarray | None, seed: int,
) -> list[list[int]]:
    """choose_tiers for many clusters: Lloyd's k-means on the sorted 1-D values (its cells are
    intervals, so tiers stay contiguous and equal values stay together), k by the same
    annotator-agreement criterion, tau-b by scipy per annotator.  ``seed`` is unused: the
    starts (quantiles, and an even grid over the range) are deterministic."""
    from scipy.stats import kendalltau

    sv = np.sort(v)

    def lloyd(centres: np.ndarray) -> tuple[np.ndarray, float]:
        # hand-written: with sorted values an iteration is one searchsorted + one reduceat,
        # O(n); scikit-learn's threaded KMeans is ~100x slower on 1-D data on a busy machine
        for _ in range(300):
            cuts = np.searchsorted(sv, (centres[1:] + centres[:-1]) / 2, side="right")
            starts = np.unique(np.concatenate([[0], cuts]))
            starts = starts[starts < len(sv)]
            new = np.add.reduceat(sv, starts) / np.diff(np.append(starts, len(sv)))
            if len(new) == len(centres) and np.allclose(new, centres, rtol=0, atol=1e-12):
                break
            centres = new
        cuts = np.searchsorted(sv, (centres[1:] + centres[:-1]) / 2, side="right")
        sse = sum(float(((seg - seg.mean()) ** 2).sum()) for seg in np.split(sv, cuts) if len(seg))
        return centres, sse

    def tiers_for(k: int) -> list[list[int]]:
        uniq = np.unique(sv)
        starts = [uniq[np.linspace(0, len(uniq) - 1, k).round().astype(int)],
                  np.linspace(sv[0], sv[-1], k)]
        centres = min((lloyd(np.unique(c)) for c in starts), key=lambda cs: cs[1])[0]
        label = np.searchsorted((centres[1:] + centres[:-1]) / 2, v, side="left")
        groups = [np.flatnonzero(label == lab) for lab in range(len(centres))]
        return [sorted(g.tolist()) for g in groups if len(g)]

    if n_tiers is not None:
        if not 1 <= n_tiers <= distinct:
            raise ValueError(f"n_tiers must be in 1..{distinct} (distinct consensus values)")
        return tiers_for(n_tiers)
    if ranks is None:
        raise ValueError(f"more than {EXACT_TIERS_MAX} values: pass the annotators' ranks or n_tiers")
    r = np.asarray(ranks, dtype=float)
    w = np.ones(len(r)) if weights is None else np.asarray(weights, dtype=float)
    best, best_score = None, -np.inf
    for k in range(2, min(max_tiers, distinct) + 1):
        tiers = tiers_for(k)
        level = np.empty(len(v))
        for i, t in enumerate(tiers):
            level[t] = i
        taus = np.array([kendalltau(level[ok], row[ok], variant="b").statistic
                         for row in r for ok in [~np.isnan(row)]])
        good = ~np.isnan(taus)
        score = float((taus[good] * w[good]).sum() / w[good].sum()) if good.any() else -np.inf
        if score > best_score + 1e-12:
            best, best_score = tiers, score
    return best if best is not None else [sorted(range(len(v)))]


def choose_tiers(
    values: np.ndarray,
    *,
    n_tiers: int | None = None,
    max_tiers: int = 12,
    ranks: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    n_refs: int = 100,
    seed: int = 0,
) -> list[list[int]]:
    """Group 1-D consensus values into ordered tiers (index lists, lowest values first).

    Each k is solved exactly by 1-D k-means (dynamic programming over the sorted values, so
    tiers are contiguous and equal values are never split).  Without ``n_tiers``, k ranges over
    ``2..min(max_tiers, distinct values)`` and the criterion is:

    * with ``ranks`` (A, C) (what :func:`ensemble` passes): the k whose tiering agrees best
      with the annotators -- highest ``weights``-weighted mean Kendall tau-b against each row.
      Tau-b charges both for splitting what annotators tie and for tying what they order, so
      the tier count follows the annotators' own granularity.  No randomness.
    * without: the gap statistic (Tibshirani et al. 2001), ``mean(log W_k*) - log W_k`` with
      ``W_k`` the within-tier SSE and ``W_k*`` that of ``n_refs`` uniform samples on
      [min, max] from ``default_rng(seed)``.

    Ties go to fewer tiers; a single distinct value gives one tier.  (Mean silhouette and the
    gap "first k within one s.e." rule were tried and rejected: on the NK POGs both stop at the
    urban/rural split, k = 2, which is useless for ranking.)
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or not np.isfinite(v).all():
        raise ValueError("values must be a finite 1-D array")
    n = len(v)
    if n == 0:
        return []
    order = np.argsort(v, kind="stable")
    sv = v[order]
    allowed = np.concatenate([[True], sv[1:] > sv[:-1]])
    distinct = int(allowed.sum())

    def tiers_for(k: int, back: list[np.ndarray]) -> list[list[int]]:
        bounds = [*_segments(back, k, n), n]
        return [sorted(order[bounds[t]:bounds[t + 1]].tolist()) for t in range(k)]

    if n > EXACT_TIERS_MAX and distinct > 1:
        return _choose_tiers_large(v, distinct, n_tiers=n_tiers, max_tiers=max_tiers, ranks=ranks,
                                   weights=weights, seed=seed)
    if n_tiers is not None:
        if not 1 <= n_tiers <= distinct:
            raise ValueError(f"n_tiers must be in 1..{distinct} (distinct consensus values)")
        _, back = _kmeans_1d_dp(sv[None, :], n_tiers, allowed[None, :])
        return tiers_for(n_tiers, back)
    if distinct == 1:
        return [sorted(order.tolist())]
    k_max = min(max_tiers, distinct)
    sse, back = _kmeans_1d_dp(sv[None, :], k_max, allowed[None, :])
    ks = range(2, k_max + 1)
    if ranks is not None:
        cand = np.empty((len(ks), n))
        for row, k in enumerate(ks):
            for level, tier in enumerate(tiers_for(k, back)):
                cand[row, tier] = level
        tau = _tau_b_against(cand, ranks)  # (A, K)
        w = np.ones(len(tau)) if weights is None else np.asarray(weights, dtype=float)
        ok = ~np.isnan(tau)
        score = (np.where(ok, tau, 0.0) * w[:, None]).sum(axis=0) / (ok * w[:, None]).sum(axis=0)
    else:
        rng = np.random.default_rng(seed)
        refs = np.sort(rng.uniform(sv[0], sv[-1], size=(n_refs, n)), axis=1)
        floor = 1e-12 * float(((sv - sv.mean()) ** 2).sum())  # exact fits: W_k = 0
        ref_sse = np.concatenate(
            [_kmeans_1d_dp(chunk, k_max)[0]
             for chunk in np.array_split(refs, max(1, n_refs * n * n // 20_000_000))]
        )
        gap = np.log(np.maximum(ref_sse, floor)).mean(axis=0) - np.log(np.maximum(sse[0], floor))
        score = gap[1:]
    best = int(np.flatnonzero(score >= np.nanmax(score) - 1e-12)[0])
    return tiers_for(ks[best], back)
