"""Per-voxel (3D) or per-pixel (2D) features for the classical segmentation rung."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["VoxelFeatures"]


@dataclass(frozen=True)
class VoxelFeatures:
    """Multiscale intensity, edge and texture features plus normalised position.

    The filter bank is scikit-image's ``multiscale_basic_features`` (Gaussian-smoothed
    intensity, gradient magnitude and Hessian eigenvalues at log-spaced scales).

    Parameters
    ----------
    sigma_min, sigma_max : float
        Smallest and largest Gaussian scale in voxels.
    num_sigma : int
        Number of log-spaced scales.
    include_position : bool
        Append each voxel's coordinate divided by the axis length (in [0, 1]); strong
        where images are crops around the structure (e.g. the MSD hippocampus).
    include_rank : bool
        Append each voxel's intensity percentile rank within its image, per channel:
        robust to the arbitrary intensity scale of MRI.
    lab : bool
        The image is a photograph's R, G and B in [0, 1]: filter its CIE L*a*b* channels
        (perceptual lightness and the two colour-opponent axes) instead. The transform is
        invertible, so no colour is lost, and the feature count stays that of R, G, B (adding
        them instead would double it and push Kvasir-SEG's features past the in-memory cache).
    """

    sigma_min: float = 1.0
    sigma_max: float = 8.0
    num_sigma: int = 4
    include_position: bool = True
    include_rank: bool = True
    lab: bool = False

    def n_features(self, n_channels: int, dims: int) -> int:
        """Features per voxel: intensity + edges + ``dims`` Hessian eigenvalues per scale and channel, extras."""
        return (n_channels * self.num_sigma * (2 + dims) + (dims if self.include_position else 0)
                + (n_channels if self.include_rank else 0))

    def compute(self, image: np.ndarray, workers: int | None = None) -> np.ndarray:
        """Features of a whole ``(n_channels, *spatial)`` image, shape ``(n_features, *spatial)``."""
        _, _, features = next(self.slabs(image, max_voxels=None, workers=workers))
        return features.T.reshape(-1, *image.shape[1:])

    def slabs(self, image: np.ndarray, max_voxels: int | None,
              workers: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Features slab by slab along the first spatial axis, to bound memory.

        Each slab is filtered with a margin of four times the largest sigma (the
        Gaussian's truncation), so results equal those of the whole image.

        Yields
        ------
        start, stop : int
            The slab's rows along the first spatial axis.
        features : ndarray, shape (n_voxels_in_slab, n_features), float32
            Rows in C order of the slab's voxels.
        """
        from skimage.feature import multiscale_basic_features

        if self.lab:
            from automed.features.colour import to_lab

            image = to_lab(image).astype(np.float32)
        spatial = image.shape[1:]
        per_row = int(np.prod(spatial[1:]))
        n_rows = spatial[0]
        rows = n_rows if max_voxels is None else max(1, min(n_rows, max_voxels // per_row))
        margin = 0 if rows >= n_rows else math.ceil(4 * self.sigma_max) + 1
        if self.include_rank:
            from scipy.stats import rankdata

            ranks = np.stack([(rankdata(ch, axis=None).reshape(spatial) - 1) / max(ch.size - 1, 1) for ch in image])
        for start in range(0, n_rows, rows):
            stop = min(n_rows, start + rows)
            lo, hi = max(0, start - margin), min(n_rows, stop + margin)
            bank = multiscale_basic_features(
                np.moveaxis(image[:, lo:hi], 0, -1), intensity=True, edges=True, texture=True,
                sigma_min=self.sigma_min, sigma_max=self.sigma_max, num_sigma=self.num_sigma,
                channel_axis=-1, workers=workers,
            )[start - lo:stop - lo]
            columns = [bank.reshape(-1, bank.shape[-1]).astype(np.float32, copy=False)]
            if self.include_position:
                axes = [np.linspace(0.0, 1.0, n, dtype=np.float32) for n in spatial]
                axes[0] = axes[0][start:stop]
                grids = np.meshgrid(*axes, indexing="ij")
                columns.append(np.stack([g.ravel() for g in grids], axis=1))
            if self.include_rank:
                columns.append(ranks[:, start:stop].reshape(len(image), -1).T.astype(np.float32))
            yield start, stop, np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]
