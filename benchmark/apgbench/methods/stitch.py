"""2D+stitch: segment a volume slice by slice, then join the slices' objects across z (apgbench's code).

The rule is the one µSAM uses to merge per-slice segmentations into 3D (``micro_sam.multi_dimensional_
segmentation.merge_instance_segmentation_3d``, as called by ``automatic_3d_segmentation``); the code here is
our own and needs neither elf nor a multicut solver:

1. the objects of every slice get ids unique across the volume;
2. an edge joins object ``a`` in slice ``z`` to every object ``b`` in slice ``z + 1`` it overlaps, with the
   overlap fraction ``p = |a ∩ b| / |a|`` (normalised by the object in the lower slice, as µSAM/elf do);
3. each edge gets the weight ``w = 1 - log((1 - q) / q)`` with ``q = 0.998 p + 0.001``: µSAM's multicut
   costs (elf's ``compute_edge_costs`` with its default boundary bias 0.5, passed to the solver as
   ``1 - costs``). Positive weights attract: ``p`` above about 0.27 favours a merge;
4. the multicut problem on this graph is solved by greedy additive edge contraction (GAEC: contract the most
   attractive edge, add up the weights of edges that become parallel, stop when no positive edge is left).
   µSAM solves the same objective with elf's decomposition solver (Kernighan-Lin per component); the two agree
   whenever the objective has no conflicting cycles, which is the common case (an object over-segmented in
   one slice). ``tests/methods/test_stitch.py`` compares them.

µSAM's optional ``gap_closing`` and ``min_z_extent`` are off by default in its 3D segmentation and not
offered here.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

import numpy as np

STITCH_RULES = ("overlap",)


def stitch_slices(slices: np.ndarray | Iterable[np.ndarray], rule: str = "overlap") -> np.ndarray:
    """Join per-slice label images into one 3D label volume.

    Parameters
    ----------
    slices : (Z, Y, X) array of int, or a sequence of (Y, X) label images
        Each slice's instance labels; ids need not be unique across slices (0 = background).
    rule : {"overlap"}
        The stitching rule (see the module notes).

    Returns
    -------
    labels : (Z, Y, X) ndarray of uint32
        Objects numbered 1..N in order of their first voxel (z, then y, x).

    Raises
    ------
    ValueError
        For an unknown rule, or slices that are not 2D label images of one shape.
    """
    if rule not in STITCH_RULES:
        raise ValueError(f"Unknown stitching rule '{rule}'; known: {', '.join(STITCH_RULES)}.")
    stack = _unique_ids(slices)
    n_nodes = int(stack.max()) + 1
    uv, weights = overlap_edges(stack)
    node_labels = _gaec(n_nodes, uv, weights)
    merged = node_labels[stack]
    return _relabel_first_seen(merged)


def overlap_edges(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges ``(a, b)`` between objects of adjacent slices that overlap, and their µSAM weights.

    Parameters
    ----------
    stack : (Z, Y, X) array of int
        Labels with ids unique across slices.

    Returns
    -------
    uv : (E, 2) ndarray of int64
        Object ids, ``a`` in slice z, ``b`` in slice z + 1.
    weights : (E,) ndarray of float64
        ``1 - log((1 - q) / q)``, ``q = 0.998 p + 0.001``, ``p = |a ∩ b| / |a|``.
    """
    sizes = np.bincount(stack.ravel())
    edges, fractions = [], []
    for z in range(stack.shape[0] - 1):
        a, b = stack[z].ravel(), stack[z + 1].ravel()
        both = (a > 0) & (b > 0)
        if not both.any():
            continue
        pairs, counts = np.unique(np.stack([a[both], b[both]], axis=1), axis=0, return_counts=True)
        edges.append(pairs.astype(np.int64))
        fractions.append(counts / sizes[pairs[:, 0]])  # ids are unique per slice: sizes are in-slice sizes
    if not edges:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    p = np.concatenate(fractions)
    q = 0.998 * p + 0.001
    return np.concatenate(edges), 1.0 - np.log((1.0 - q) / q)


def _unique_ids(slices) -> np.ndarray:
    """Stack the slices with ids offset so that no id repeats across slices."""
    planes = [np.asarray(s) for s in slices]
    if not planes or any(p.ndim != 2 or p.shape != planes[0].shape for p in planes):
        raise ValueError("stitch_slices needs a non-empty sequence of 2D label images of one shape.")
    stack = np.zeros((len(planes), *planes[0].shape), np.uint32)
    offset = 0
    for z, plane in enumerate(planes):
        ids, inverse = np.unique(plane, return_inverse=True)
        inverse = inverse.reshape(plane.shape).astype(np.int64)
        if ids[0] == 0:
            n = ids.size - 1
            stack[z] = np.where(inverse > 0, inverse + offset, 0)
        else:
            n = ids.size
            stack[z] = inverse + 1 + offset
        offset += n
    return stack


def _gaec(n_nodes: int, uv: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Greedy additive edge contraction; returns each node's cluster representative."""
    parent = np.arange(n_nodes)
    adjacency: dict[int, dict[int, float]] = {}
    for (u, v), w in zip(uv.tolist(), weights.tolist()):  # pairs are unique: (a in z, b in z + 1)
        adjacency.setdefault(u, {})[v] = w
        adjacency.setdefault(v, {})[u] = w
    heap = [(-w, u, v) for u, nbrs in adjacency.items() for v, w in nbrs.items() if u < v and w > 0]
    heapq.heapify(heap)
    while heap:
        neg, u, v = heapq.heappop(heap)
        # Skip stale entries: a contracted node, or a weight that changed since it was pushed.
        if parent[u] != u or parent[v] != v or adjacency[u].get(v) != -neg:
            continue
        if len(adjacency[u]) < len(adjacency[v]):
            u, v = v, u  # merge the smaller neighbourhood into the larger one
        parent[v] = u
        del adjacency[u][v]
        for x, w in adjacency.pop(v).items():
            if x == u:
                continue
            del adjacency[x][v]
            total = adjacency[u].get(x, 0.0) + w
            adjacency[u][x] = adjacency[x][u] = total
            if total > 0:
                heapq.heappush(heap, (-total, min(u, x), max(u, x)))
    return _find_all(parent)


def _find_all(parent: np.ndarray) -> np.ndarray:
    """Resolve union-find parents to roots for every node."""
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def _relabel_first_seen(labels: np.ndarray) -> np.ndarray:
    flat = labels.ravel()
    ids, first = np.unique(flat, return_index=True)
    order = ids[np.argsort(first)]
    order = order[order != 0]
    lut = np.zeros(int(ids.max()) + 1 if ids.size else 1, np.uint32)
    lut[order] = np.arange(1, order.size + 1, dtype=np.uint32)
    return lut[labels]


def segment_slices(
    segment_2d: Callable[[np.ndarray], np.ndarray],
    volume: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """Run a 2D segmentation on every z-slice of ``volume`` ((Z, Y, X) or (Z, Y, X, C)).

    ``progress(done, total)`` is called after each slice.
    """
    out = []
    for z in range(volume.shape[0]):
        out.append(np.asarray(segment_2d(volume[z])))
        if progress is not None:
            progress(z + 1, volume.shape[0])
    return out
