"""Vectorised random draws of the synthetic book: categories, refill series, episode counts."""

from __future__ import annotations

import numpy as np


def draw_from_cdf(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """Categorical draws from a cumulative distribution.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's random stream (one ``random`` draw of ``n`` values).
    cdf : numpy.ndarray
        Cumulative probabilities, ending at 1.
    n : int
        Number of draws.

    Returns
    -------
    numpy.ndarray
        Category index per draw.
    """
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def weighted_choice(rng: np.random.Generator, values, weights, n: int) -> np.ndarray:
    """``n`` draws from ``values`` with the relative ``weights``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's random stream.
    values, weights : array_like
        The values and their (unnormalised) weights.
    n : int
        Number of draws.

    Returns
    -------
    numpy.ndarray
        The drawn values.
    """
    values = np.asarray(values)
    w = np.asarray(weights, dtype=np.float64)
    return values[draw_from_cdf(rng, np.cumsum(w) / w.sum(), n)]


def refill_series(rng: np.random.Generator, start, stop, ds, p_early=0.12, p_late=0.12):
    """Refill series: series ``i`` has fills from day ``start[i]`` every ~``ds[i]`` days.

    Gaps carry jitter, early refills and late gaps; fills before day 0 or from ``stop[i]`` on are
    dropped.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's random stream.
    start, stop, ds : array_like
        First day, end day (exclusive) and days supply of each series.
    p_early, p_late : float
        Share of early refills and of late gaps.

    Returns
    -------
    tuple of numpy.ndarray
        ``(series_index, day, fill_number)`` of the kept fills.
    """
    start = np.asarray(start, dtype=np.int64)
    stop = np.asarray(stop, dtype=np.int64)
    ds = np.asarray(ds, dtype=np.int64)
    n = len(start)
    if n == 0:
        e = np.zeros(0, np.int64)
        return e, e, e
    # enough fills for an average gap 20% below ds (early refills are 10-35% early, 12% of fills)
    counts = np.maximum(stop - start, 1) // np.maximum((ds * 0.8).astype(np.int64), 1) + 2
    sid = np.repeat(np.arange(n), counts)
    m = len(sid)
    d = ds[sid]
    gap = d.copy()
    monthly = d >= 14
    gap[monthly] += rng.integers(-1, 2, size=int(monthly.sum()))
    u = rng.random(m)
    early = u < p_early
    late = u > 1 - p_late
    gap[early] -= np.ceil(d[early] * rng.uniform(0.1, 0.35, size=int(early.sum()))).astype(np.int64)
    gap[late] += (d[late] * rng.uniform(0.1, 0.7, size=int(late.sum()))).astype(np.int64) + 2
    first = np.cumsum(counts) - counts
    gap[first] = 0
    cs = np.cumsum(gap)
    within = cs - np.repeat(cs[first], counts)
    day = start[sid] + within
    seq = np.arange(m) - np.repeat(first, counts)
    keep = (day >= 0) & (day < stop[sid])
    return sid[keep], day[keep], seq[keep]


def episode_members(rng: np.random.Generator, lam) -> np.ndarray:
    """Poisson episode counts per member, as the member index of each episode.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's random stream.
    lam : numpy.ndarray
        Expected episodes per member (over the whole date range).

    Returns
    -------
    numpy.ndarray
        Member index per episode, in member order.
    """
    k = rng.poisson(lam)
    return np.repeat(np.arange(len(lam)), k)
