"""``automed predict`` for a registration run: for every pair, the warped moving image, its warped label and the
displacement field, in the fixed image's geometry.

``displacement.nii.gz`` is a vector image in physical units that ``sitk.DisplacementFieldTransform`` (and ITK,
ANTs) read: ``T(p) = p + d(p)`` maps a point of the fixed image to the moving image's corresponding point, so
``sitk.Resample(moving, fixed, T)`` is the warped image; the warped image and label written here are made
exactly so (linear for the image, nearest neighbour for the label). ``pairs.csv`` lists every pair with the
seconds its registration took.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["predict_registration"]


def predict_registration(run_folder: str | Path, inputs: str | Path, out: str | Path, rung: str | None = None,
                         split: str | None = None, overwrite: bool = False, progress: bool = True,
                         tta: bool = True) -> list[Path]:
    """Register the pairs of ``inputs`` (a CSV ``fixed,moving[,fixed_label,moving_label]`` or a Learn2Reg folder:
    its ``registration_test`` pairs, else its ``registration_val`` ones) with the run's ``rung`` (default: the
    recommended one); write one folder per pair into ``out``.

    Raises
    ------
    DataError
        A pair names a missing file, or its images differ in dimensionality or channels (named).
    RunFolderError
        ``out`` is taken, or the run has no such fitted rung.
    """
    import SimpleITK as sitk
    from tqdm.auto import tqdm

    from automed.data.atomic import folder_written_atomically
    from automed.data.registration import load_on_grid, open_registration
    from automed.errors import DataError
    from automed.ladder.outputs import check_output_folder, refuse_overlap, write_output_record
    from automed.ladder.predict import _open_run
    from automed.registration.fields import displacement_image
    from automed.rungs.fitted import load_fitted

    run_folder, out, inputs = Path(run_folder), Path(out), Path(inputs)
    if split is not None:
        raise DataError(f"{inputs}: --split applies to classification .npz inputs; {run_folder} is a registration run.")
    _, name = _open_run(run_folder, rung)
    refuse_overlap(out, {"the input pairs": inputs, "the run folder": run_folder})
    check_output_folder(out, overwrite, "predictions")
    fingerprint = json.loads((run_folder / "fingerprint.json").read_text())
    dataset = open_registration(inputs)
    pairs = dataset.test or dataset.evaluation
    model = load_fitted(name, "registration", run_folder / "rungs" / name)
    rows, written = [], []
    with folder_written_atomically(out) as folder:
        for pair in tqdm(pairs, desc=f"registering ({name})", unit="pair", disable=not progress):
            fixed_volume, moving_volume = dataset.volumes[pair.fixed], dataset.volumes[pair.moving]
            fixed, moving = load_on_grid(fixed_volume, fingerprint), load_on_grid(moving_volume, fingerprint)
            started = time.perf_counter()
            displacement = model.register(fixed.image, moving.image)
            seconds = time.perf_counter() - started
            field = displacement_image(displacement[(slice(None), *fixed.placement.region())], fixed.placement,
                                       moving.placement)
            reference = _reference(field)
            transform = sitk.DisplacementFieldTransform(sitk.Image(field))
            target = folder / pair.case_id
            target.mkdir()
            sitk.WriteImage(field, str(target / "displacement.nii.gz"))
            moving_image = sitk.ReadImage(str(moving_volume.image))
            sitk.WriteImage(sitk.Resample(moving_image, reference, transform, sitk.sitkLinear, 0.0,
                                          moving_image.GetPixelID()), str(target / "warped.nii.gz"))
            files = ["displacement.nii.gz", "warped.nii.gz"]
            if moving_volume.label is not None:
                label = sitk.ReadImage(str(moving_volume.label))
                sitk.WriteImage(sitk.Resample(label, reference, transform, sitk.sitkNearestNeighbor, 0,
                                              label.GetPixelID()), str(target / "warped_label.nii.gz"))
                files.append("warped_label.nii.gz")
            written += [out / pair.case_id / f for f in files]
            rows.append({"pair": pair.case_id, "fixed": str(fixed_volume.image), "moving": str(moving_volume.image),
                         "seconds": f"{seconds:.4f}"})
        if not rows:
            raise DataError(f"{inputs}: no pair to register.")
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        (folder / "pairs.csv").write_text(text.getvalue())
        write_output_record(folder, "predictions", {"run": str(run_folder.resolve()), "rung": name,
                                                    "task": "registration", "n_pairs": len(rows)})
    return [out / "pairs.csv", *written]


def _reference(field: Any) -> Any:
    """An empty scalar image with the geometry of ``field`` (the fixed image's), to resample onto."""
    import SimpleITK as sitk

    reference = sitk.Image(field.GetSize(), sitk.sitkUInt8)
    reference.CopyInformation(field)
    return reference
