"""The :class:`Pog` value: a partial order graph (POG) over cluster ids, kept in canonical form.

A POG is what a human annotator says about the Stage-1 clusters: ``a > b`` (a is more
developed), ``a = b`` (tie), or nothing (incomparable).  This module holds the graph itself and
what is computed on it -- canonicalisation (topological sort, transitive reduction over
equivalence classes), comparisons, text forms, rank vectors and the least->most tier paths
Stage 3 trains on (enumerated, or sampled uniformly when there are too many) -- so that parsing
(:mod:`.parse`), agreement (:mod:`.agreement`) and the ensemble (:mod:`.ensemble`) all share one
immutable, hashable value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["Pog"]


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
            (lo, hi)
            for a, outs in enumerate(cover)
            for b in outs
            for lo in classes[a]
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
        return cls.from_sorted_tiers(tiers)

    @classmethod
    def from_sorted_tiers(cls, tiers: list[list[int]]) -> Pog:
        """A total preorder from tiers that are already valid: least developed first, each
        sorted, non-empty and disjoint (unchecked).  Skips the general canonicalisation and
        pre-fills the caches (parsing 100k POGs must stay cheap)."""
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
            str(c[0])
            for a, c in enumerate(self._classes)
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
        equal = (*self.equal, frozenset({cluster_id}))
        return Pog(self.nodes | {cluster_id}, frozenset(less), equal)

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

        A cluster's rank is 1 + the clusters below it + half of those equal to or incomparable
        with it, among the ``ids`` the POG relates: its expected position when each pair the
        annotator left open is a coin flip (for a total preorder: the average rank of its
        tier).  So clusters in two separate chains are not ordered by their depth, and an
        incomparable pair counts for neither side.  A cluster the POG does not mention, or
        mentions without relating it to any other (a bare id), is NaN: it says nothing."""
        if self.is_total():
            return self._tier_ranks(ids)
        present = np.array([self._related(i) for i in ids], dtype=bool)
        classes = [self._class_of[i] for i, p in zip(ids, present) if p]
        # above[k, l]: the l-th related cluster lies strictly above the k-th (pairs in Python
        # bitsets: a POG that is not a total preorder is a hand-written one, not thousands)
        above = np.array([[self._reach[a] >> b & 1 for b in classes] for a in classes], float)
        above = above.reshape(len(classes), len(classes))
        n_below, n_above = above.sum(axis=0), above.sum(axis=1)
        out = np.full(len(ids), np.nan)
        out[present] = 1.0 + n_below + 0.5 * (len(classes) - 1 - n_below - n_above)
        return out

    def _related(self, cluster: int) -> bool:
        c = self._class_of.get(cluster)
        return c is not None and bool(self._succ[c] or self._pred[c] or len(self.equal[c]) > 1)

    def _tier_ranks(self, ids: Sequence[int]) -> np.ndarray:
        """:meth:`rank_vector` of a total preorder: the depth is the tier."""
        depth, class_of = self._depth, self._class_of
        level = np.fromiter(
            (depth[class_of[i]] if i in class_of else -1 for i in ids),
            dtype=np.int64,
            count=len(ids),
        )
        present = level >= 0
        counts = np.bincount(level[present]) if present.any() else np.zeros(1, np.int64)
        below = np.cumsum(counts) - counts  # clusters on strictly lower levels
        avg = below + (counts + 1) / 2.0  # average of ranks below+1 .. below+count
        return np.where(present, avg[np.where(present, level, 0)], np.nan)

    def stated_pairs(self, ids: Sequence[int]) -> np.ndarray:
        """Over the pairs (i < j) of ``ids`` (``np.triu_indices`` order): whether the POG states
        their relation (less, more or equal); incomparable or unmentioned pairs are not."""
        ids = list(ids)
        ok = np.array([i in self._class_of for i in ids], dtype=bool)
        iu = np.triu_indices(len(ids), k=1)
        both = ok[iu[0]] & ok[iu[1]]
        if self.is_total():
            return both
        out = np.zeros(len(iu[0]), dtype=bool)
        for k in np.flatnonzero(both):
            i, j = ids[iu[0][k]], ids[iu[1][k]]
            same = self._class_of[i] == self._class_of[j]
            out[k] = same or self.is_less(i, j) or self.is_less(j, i)
        return out

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
