"""The images to predict: one file, a folder of images, or a list of files, as unlabelled cases."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from automed.data.case import Case
from automed.data.dataset import files_by_stem, group_channels, visible_entries
from automed.data.io import folder_problem, image_suffix, strip_suffix
from automed.errors import DataError

__all__ = ["find_images", "listed_files"]


def listed_files(paths: Sequence[str | Path]) -> list[Path]:
    """``paths`` as paths, checked: a non-empty list whose every entry exists.

    Raises
    ------
    DataError
        Naming the entries that are missing (the first five), or saying the list is empty.
    """
    files = [Path(f) for f in paths]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise DataError(f"{', '.join(missing[:5])}: not found.")
    if not files:
        raise DataError("the list of images to predict is empty.")
    return files


def find_images(path: str | Path | Sequence[str | Path], channel_names: tuple[str, ...],
                channels_in_one_file: bool = False) -> list[Case]:
    """Unlabelled cases to predict: one file, every image in a folder, or a list of files.

    With several channels each in its own file, files are grouped nnU-Net style
    (``CASE_0000.ext``, ...). A folder among them must be a DICOM series.

    Raises
    ------
    DataError
        Nothing to predict, a missing path, names that clash, or a folder among the images (listed,
        or inside the folder given) that is no DICOM series, saying what it holds.
    """
    cases = _find_cases(path, channel_names, channels_in_one_file)
    for folder in sorted({p for case in cases for p in case.image_paths if p.is_dir()}):
        if problem := folder_problem(folder):  # before anything is predicted
            raise DataError(f"{folder}: {problem}")
    return cases


def _find_cases(path: str | Path | Sequence[str | Path], channel_names: tuple[str, ...],
                channels_in_one_file: bool) -> list[Case]:
    if not isinstance(path, (str, Path)):
        files = listed_files(path)
        if len(channel_names) == 1 or channels_in_one_file:
            cases = [Case(strip_suffix(f), (f,)) for f in files]
        else:
            cases = list(group_channels(files, len(channel_names), files[0].parent))
        ids = [c.case_id for c in cases]
        clashes = sorted({i for i in ids if ids.count(i) > 1})
        if clashes:
            raise DataError(f"{', '.join(clashes[:5])}: several listed files are named as the same case; their "
                            "predictions would overwrite each other. Rename them or predict them apart.")
        return cases
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found.")
    if path.is_file():
        return [Case(strip_suffix(path), (path,))]
    if (path / "imagesTs").is_dir():
        path = path / "imagesTs"
    elif (path / "dataset.json").is_file() or (path / "imagesTr").is_dir():
        raise DataError(f"{path}: a dataset folder without imagesTs/; give the folder that holds the images to "
                        "predict (e.g. its imagesTs/).")
    files = visible_entries(path)
    if not files:
        raise DataError(f"{path}: holds no images to predict.")
    if all(image_suffix(f) == ".dcm" for f in files):  # the folder is one DICOM series
        return [Case(path.name, (path,))]
    if len(channel_names) == 1 or channels_in_one_file:
        stems = files_by_stem(files)
        nnunet_names = all(stem.endswith("_0000") for stem in stems)  # CASE_0000.png: case CASE
        return [Case(stem.removesuffix("_0000") if nnunet_names else stem, (f,)) for stem, f in stems.items()]
    return list(group_channels(files, len(channel_names), path))
