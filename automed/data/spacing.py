"""Choosing the working grid's spacing from the cases' own spacings, as nnU-Net's planner does.

The target is the median spacing per axis. When one axis is much coarser than the others
(more than 3 times the finest in-plane spacing) and also has far fewer voxels (typical of CT or
MRI acquired in thick slices), the median would throw away the through-plane resolution that
the better cases have; that axis then takes the 10th percentile of its spacings instead (but
never finer than the in-plane spacing). This re-implements the rule of nnU-Net's
``ExperimentPlanner.determine_fullres_target_spacing`` on plain arrays, since nnU-Net's planner
needs its whole preprocessed-dataset layout to run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ANISOTROPY_RATIO", "choose_target_spacing", "implausible_spacing", "spacing_spread"]

#: An axis counts as anisotropic when its spacing is over this many times the others' (nnU-Net's 3).
ANISOTROPY_RATIO = 3.0
#: Spacings that differ by less than this fraction count as the same.
SPREAD_TOLERANCE = 0.05
#: Bounds of a plausible voxel size in millimetres. Electron microscopy, the finest imaging in
#: medical datasets, records pixels of a few nanometres (ISBI 2012 EM: 4 nm = 4e-6 mm), so 1e-6 mm
#: (1 nm) leaves it room; no scanner or camera records voxels of 10 m (1e4 mm). Outside, the header
#: is corrupt (1e-30) or its unit wrong.
MIN_SPACING_MM = 1e-6
MAX_SPACING_MM = 1e4
#: A case whose spacing differs from the dataset's median on some axis by more than this factor is
#: refused. Real datasets mix resolutions by up to about 10x (CT slices of 0.5 to 5 mm, MSD
#: prostate 0.6 to 4 mm); a unit slip (metres or micrometres among millimetres) is 1000x. 100 keeps
#: an order of magnitude of margin on both sides.
MAX_SPACING_FACTOR = 100.0


def choose_target_spacing(spacings: Sequence[Sequence[float]],
                          shapes: Sequence[Sequence[int]]) -> tuple[tuple[float, ...], str]:
    """The working grid's spacing (array axis order) for cases of these ``spacings`` and ``shapes``,
    and why it was chosen.

    Examples
    --------
    >>> choose_target_spacing([(1.0, 1.0), (1.0, 1.0)], [(64, 64), (60, 70)])
    ((1.0, 1.0), 'the median spacing of the cases (nnU-Net rule); every case is already on it')
    >>> target, why = choose_target_spacing([(5.0, 0.7, 0.7), (2.5, 0.8, 0.8), (5.0, 0.7, 0.7)],
    ...                                     [(40, 512, 512), (80, 512, 512), (40, 512, 512)])
    >>> target
    (3.0, 0.7, 0.7)
    """
    spacing = np.asarray(spacings, dtype=float)
    shape = np.asarray(shapes, dtype=float)
    target = np.median(spacing, axis=0)
    reason = "the median spacing of the cases (nnU-Net rule)"
    if target.size > 1:
        worst = int(np.argmax(target))
        others = [a for a in range(target.size) if a != worst]
        finest_other = float(target[others].max())
        median_size = np.median(shape, axis=0)
        thick = target[worst] > ANISOTROPY_RATIO * finest_other
        few_voxels = median_size[worst] * ANISOTROPY_RATIO < median_size[others].min()
        if thick and few_voxels:
            through_plane = max(float(np.percentile(spacing[:, worst], 10)), finest_other)
            reason += (f"; axis {worst} is anisotropic (median spacing {target[worst]:.3g} over "
                       f"{ANISOTROPY_RATIO:g} x the other axes' {finest_other:.3g}, and {median_size[worst]:.0f} "
                       f"voxels against {median_size[others].min():.0f}), so it takes the 10th percentile of its "
                       f"spacings, {through_plane:.3g}, to keep the through-plane resolution of the finer cases")
            target[worst] = through_plane
    n_off = int(np.sum(np.any(np.abs(spacing - target) > SPREAD_TOLERANCE * target, axis=1)))
    reason += f"; {n_off} of {len(spacing)} case(s) are resampled onto it" if n_off else "; every case is already on it"
    return tuple(round(float(s), 6) for s in target), reason


def spacing_spread(spacings: Sequence[Sequence[float]]) -> str | None:
    """A sentence on how much the cases' spacings differ per axis (array order), or None when they
    agree within 5%.

    Examples
    --------
    >>> spacing_spread([(1.0, 1.0), (1.0, 1.0)]) is None
    True
    >>> spacing_spread([(0.9, 1.0), (1.3, 1.0)])
    'spacings differ across cases: axis 0 from 0.9 to 1.3'
    """
    spacing = np.asarray(spacings, dtype=float)
    low, high = spacing.min(axis=0), spacing.max(axis=0)
    axes = [f"axis {a} from {low[a]:.3g} to {high[a]:.3g}" for a in range(spacing.shape[1])
            if high[a] > low[a] * (1 + SPREAD_TOLERANCE)]
    return "spacings differ across cases: " + ", ".join(axes) if axes else None


def implausible_spacing(spacing: Sequence[float], median: Sequence[float]) -> str | None:
    """Why ``spacing`` cannot be the voxel size of a case among cases of ``median`` spacing (both in
    one axis order), as a clause, or None when it is plausible.

    Examples
    --------
    >>> implausible_spacing((1.0, 1.0), (0.9, 1.2)) is None
    True
    >>> implausible_spacing((0.001, 0.001), (1.0, 1.0))
    'spacing (0.001, 0.001) is 1000 times finer than the median spacing of the cases (1, 1)'
    """
    values = np.asarray(spacing, dtype=float)
    shown = f"({', '.join(f'{s:.4g}' for s in values)})"
    if not np.isfinite(values).all() or (values <= 0).any():
        return f"spacing {shown} holds a value that is not a positive number"
    if values.min() < MIN_SPACING_MM:
        return f"spacing {shown} is below {MIN_SPACING_MM:g} mm, finer than any imaging device records"
    if values.max() > MAX_SPACING_MM:
        return f"spacing {shown} is above {MAX_SPACING_MM:g} mm, coarser than any imaging device records"
    ratio = values / np.asarray(median, dtype=float)
    worst = float(ratio.max() if ratio.max() >= 1 / ratio.min() else ratio.min())
    if max(worst, 1 / worst) <= MAX_SPACING_FACTOR:
        return None
    return (f"spacing {shown} is {max(worst, 1 / worst):.0f} times {'coarser' if worst > 1 else 'finer'} than the "
            f"median spacing of the cases ({', '.join(f'{s:.4g}' for s in median)})")
