"""RFC 6962 Merkle trees: hashing, tree heads, inclusion and consistency proofs and their checks.

A tree is read through a node source ``node(level, index) -> bytes``: the
hash of the perfect subtree of ``2**level`` leaves starting at leaf
``index * 2**level`` (level 0: the leaf hashes). Every hash a head or a
proof needs is such a node, or is made of O(log n) of them, so a stored
tree answers without a pass over its leaves. ``Frontier`` appends leaves
and says which nodes became complete; it holds only the O(log n) roots of
the perfect subtrees that make up the tree (the "compact range").

The proof functions work on any node source; ``nodes_needed`` lists the
nodes a computation reads, so a database can fetch them in one query.
The checks (``verify_inclusion``, ``verify_consistency``) are RFC 9162's
algorithms (2.1.3.2 and 2.1.4.2) and need nothing but hashes.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Sequence

NodeSource = Callable[[int, int], bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two below ``size`` (``size`` > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def subtree_hash(node: NodeSource, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``: one node if the range is a perfect subtree, else composed per RFC 6962."""
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return node(level, start >> level)
    k = _split(size)
    return node_hash(subtree_hash(node, start, start + k), subtree_hash(node, start + k, end))


def root_hash(node: NodeSource, size: int) -> bytes:
    return EMPTY_ROOT if size == 0 else subtree_hash(node, 0, size)


def inclusion_path(node: NodeSource, index: int, size: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]): the sibling hashes from the leaf up to the root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_hash(node, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(node, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(node: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[0:new_size]): shows the tree of ``old_size`` is a prefix of ``new_size``'s."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}: need 0 < old <= new")
    proof: list[bytes] = []
    start, end, remaining, complete = 0, new_size, old_size, True
    while True:
        size = end - start
        if remaining == size:
            if not complete:
                proof.append(subtree_hash(node, start, end))
            break
        k = _split(size)
        if remaining <= k:
            proof.append(subtree_hash(node, start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(node, start, start + k))
            start += k
            remaining -= k
            complete = False
    proof.reverse()
    return proof


def nodes_needed(compute: Callable[[NodeSource], object]) -> set[tuple[int, int]]:
    """The ``(level, index)`` nodes ``compute(node)`` reads (the shape of a proof does not depend on hashes)."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return EMPTY_ROOT

    compute(record)
    return wanted


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """Whether ``path`` proves ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` with ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``)."""
    if old_size > new_size or old_size < 0:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for sibling in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first = node_hash(sibling, first)
            second = node_hash(sibling, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and first == old_root and second == new_root


class Frontier:
    """The roots of the perfect subtrees of a tree, largest first: enough to append and to give the root."""

    def __init__(self, size: int = 0, roots: Iterable[bytes] = ()):
        self.size = size
        self.roots = list(roots)
        if len(self.roots) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} perfect subtrees, "
                             f"not {len(self.roots)}")

    @staticmethod
    def shape(size: int) -> list[tuple[int, int]]:
        """The ``(level, index)`` of each perfect subtree of a tree of ``size``, largest first."""
        nodes, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                nodes.append((level, start >> level))
                start += 1 << level
        return nodes

    def copy(self) -> "Frontier":
        return Frontier(self.size, self.roots)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; the ``(level, index, hash)`` of the nodes above level 0 it completed."""
        index, current, level = self.size, leaf, 0
        completed = []
        while index >> level & 1:
            current = node_hash(self.roots.pop(), current)
            level += 1
            completed.append((level, index >> level, current))
        self.roots.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        if not self.roots:
            return EMPTY_ROOT
        result = self.roots[-1]
        for left in reversed(self.roots[:-1]):
            result = node_hash(left, result)
        return result


class MemoryTree:
    """A whole tree in memory (tests, and checks of small exports): every complete node kept by level."""

    def __init__(self, leaves: Iterable[bytes] = ()):
        self.levels: list[list[bytes]] = [[]]
        self.frontier = Frontier()
        for data in leaves:
            self.append(leaf_hash(data))

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        for level, index, value in self.frontier.append(leaf):
            if len(self.levels) <= level:
                self.levels.append([])
            assert len(self.levels[level]) == index
            self.levels[level].append(value)

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    @property
    def size(self) -> int:
        return self.frontier.size
