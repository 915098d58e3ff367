"""Principal component analysis of image sets (report Task 1), on scikit-learn's PCA.

One fit of all components gives everything Task 1 reports: the explained-variance ratio of each
component, how many components keep a given share of the variance, and the 2-D projection on the
first two components. Pixels are flattened to 784 features and scaled to [0, 1]; a uniform scale
changes no ratio, it only keeps the projected coordinates readable.

    >>> fit = fit_pca(dataset.train_images)
    >>> fit.ratios[:2], fit.components_for(0.95)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA


def flatten(images: np.ndarray) -> np.ndarray:
    """Images ``(N, H, W)`` or ``(N, H, W, 1)`` of uint8 pixels as float64 rows ``(N, H*W)`` in [0, 1]."""
    rows = np.asarray(images).reshape(len(images), -1).astype(np.float64)
    return rows / 255.0 if np.asarray(images).dtype == np.uint8 else rows


@dataclass(frozen=True)
class PCAFit:
    """A PCA fitted with every component: ratios in decreasing order and the 2-D projection."""

    ratios: np.ndarray
    """Explained-variance ratio of each component, largest first; sums to 1 (up to rounding)."""
    projection: np.ndarray
    """``(N, 2)`` coordinates of the fitted samples on the first two components."""

    @property
    def cumulative(self) -> np.ndarray:
        """Cumulative explained-variance ratio after 1, 2, ... components."""
        return np.cumsum(self.ratios)

    def components_for(self, share: float) -> int:
        """The fewest components whose cumulative ratio reaches ``share`` (0 < share <= 1)."""
        return components_for(self.ratios, share)


def components_for(ratios: np.ndarray, share: float) -> int:
    """The fewest leading components of ``ratios`` whose sum reaches ``share``."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    cumulative = np.cumsum(ratios)
    # Rounding can leave the total a hair under 1: a share of 1 then means every component.
    index = int(np.searchsorted(cumulative, share - 1e-12, side="left"))
    return min(index + 1, len(ratios))


def fit_pca(images: np.ndarray) -> PCAFit:
    """Fit a PCA with all components on ``images`` and project them on the first two.

    The solver diagonalises the 784x784 covariance: with many more samples than features that is
    several times faster than an SVD of the data (docs/performance.md) and gives the same ratios.
    The signs of the components follow scikit-learn's deterministic convention.
    """
    rows = flatten(images)
    if len(rows) < 2:
        raise ValueError(f"PCA needs at least 2 samples, got {len(rows)}")
    pca = PCA(n_components=min(rows.shape), svd_solver="covariance_eigh")
    projection = pca.fit_transform(rows)[:, :2]
    return PCAFit(ratios=pca.explained_variance_ratio_.copy(), projection=projection)
