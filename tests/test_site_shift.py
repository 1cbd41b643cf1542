"""cv: by-site: every finished rung refitted leaving each site out, its unseen-site score beside its in-site one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

import automed
from automed.errors import DataError
from conftest import FAST_PARAMS, make_msd


def _two_sites(root, shifted: bool = True):
    """A tiny MSD dataset whose second half comes from 'site B', a scanner with half the contrast and more noise."""
    data = make_msd(root, n_cases=12)
    rng = np.random.default_rng(0)
    rows = ["case,group,site"]
    for i in range(12):
        site = "A" if i < 6 else "B"
        rows.append(f"case_{i:03d},p{i},{site}")
        if site == "B" and shifted:
            path = data / "imagesTr" / f"case_{i:03d}.nii.gz"
            image = sitk.ReadImage(str(path))
            array = sitk.GetArrayFromImage(image) * 0.5 + rng.normal(0, 12, image.GetSize()[::-1])
            out = sitk.GetImageFromArray(array.astype(np.float32))
            out.CopyInformation(image)
            sitk.WriteImage(out, str(path))
    (data / "groups.csv").write_text("\n".join(rows) + "\n")
    return data


def test_each_rung_is_scored_on_a_site_it_never_saw(tmp_path):
    data = _two_sites(tmp_path / "data")
    recipe = automed.Recipe(task="segmentation", n_folds=2, n_jobs=1, cv="by-site",
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    shift = json.loads((tmp_path / "run" / "site_shift.json").read_text())
    assert shift["sites"] == {"A": 6, "B": 6} and shift["judged_cases"] == "every case of the site"
    classical = shift["rungs"]["classical"]
    for site in ("A", "B"):
        row = classical["sites"][site]
        assert row["unseen"]["n"] == 6 and row["in_site"]["n"] == 6  # every case of the site, both ways
        assert row["difference"]["n"] == 6 and -1 <= row["difference"]["mean"] <= 1
    assert classical["all_sites"]["difference"]["n"] == 12
    refit = json.loads((tmp_path / "run" / "rungs" / "classical" / "sites" / "01_B" / "result.json").read_text())
    assert refit["site"] == "B" and refit["n_train"] == 6
    assert {c["case_id"] for c in refit["per_case"]} == {f"case_{i:03d}" for i in range(6, 12)}
    assert shift["degrades_least"] == "classical"
    assert run.report_["site_shift"]["rungs"]["classical"]["all_sites"] == classical["all_sites"]
    text = (tmp_path / "run" / "report.md").read_text()
    assert "## Another site" in text and "on a new site" in text


def test_a_classifier_is_tested_on_each_site_it_never_saw(tmp_path):
    from conftest import FAST_CLASSIFICATION, images_with_discs, write

    rng = np.random.default_rng(0)
    images, labels = images_with_discs(64, rng)
    rows = ["image,label,site"]
    for i, (image, label) in enumerate(zip(images, labels)):
        site = "north" if i % 2 else "south"
        if site == "south":  # another scanner: lower contrast, more noise
            image = np.clip(image * 0.6 + rng.normal(30, 15, image.shape), 0, 255).astype(np.uint8)
        write(image, tmp_path / "images" / f"{i}.png")
        rows.append(f"images/{i}.png,{label},{site}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    recipe = automed.Recipe(task="classification", n_folds=2, n_jobs=1, cv="by-site",
                            rungs=[{"name": "classical", "params": FAST_CLASSIFICATION}])
    automed.fit(recipe, tmp_path / "manifest.csv", tmp_path / "run", progress=False)
    shift = json.loads((tmp_path / "run" / "site_shift.json").read_text())
    assert set(shift["sites"]) == {"north", "south"} and shift["judged_cases"] == "the site's test cases"
    tested = json.loads((tmp_path / "run" / "splits.json").read_text())["test"]
    for site, row in shift["rungs"]["classical"]["sites"].items():
        assert row["n_cases"] == shift["sites"][site] and row["unseen"]["name"] == "auc"
        assert row["in_site"]["n"] == row["unseen"]["n"] == row["n_cases"]
    assert shift["rungs"]["classical"]["all_sites"]["n_cases"] == len(tested)
    assert "## Another site" in (tmp_path / "run" / "report.md").read_text()


def test_by_site_needs_a_site_for_every_case_and_two_sites(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=6)
    (data / "groups.csv").write_text("case,group,site\n" + "".join(f"case_{i:03d},p{i},{'A' if i else ''}\n"
                                                                   for i in range(6)))
    recipe = automed.Recipe(task="segmentation", n_folds=2, n_jobs=1, cv="by-site",
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    with pytest.raises(DataError, match=r"by-site needs every case's site .* 1 case\(s\) have none, "
                                        r"e.g. \['case_000'\]"):
        automed.fit(recipe, data, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()
    (data / "groups.csv").write_text("case,group,site\n" + "".join(f"case_{i:03d},p{i},A\n" for i in range(6)))
    with pytest.raises(DataError, match=r"two or more sites; every case is from site 'A'"):
        automed.fit(recipe, data, tmp_path / "run", progress=False)


@pytest.mark.parametrize("patch", [(16, 16), (12, 12, 12)])
def test_the_scanner_augmentation_changes_intensities_as_another_scanner_would(patch):
    from automed.deep.augment import training_transform

    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (1, *patch)).astype(np.float32)
    item = {"image": image, "label": np.zeros((1, *patch), np.uint8)}
    scanner = training_transform(patch, "scanner", seed=1)
    medium = training_transform(patch, "medium", seed=1)
    changed = [np.abs(np.asarray(scanner(item)["image"]) - np.asarray(medium(item)["image"])).max() for _ in range(10)]
    assert max(changed) > 0.05  # some draws add a bias field, gamma, histogram shift, blur or noise
    assert automed.Recipe(task="segmentation", rungs=[{"name": "unet2d", "params": {"augmentations": ["scanner"]}}])


def _dicom_series(folder, tags: dict[str, str]):
    import locale

    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    ctype = locale.setlocale(locale.LC_CTYPE)  # GDCM's DICOM writer sets the C locale; later tests need UTF-8
    for z in range(3):
        plane = sitk.GetImageFromArray(np.full((4, 5), z, np.int16))
        for tag, value in {"0020|000d": "1.2.3", "0020|000e": "1.2.3.4", "0020|0013": str(z + 1),
                           "0020|0032": f"0\\0\\{z * 2.0}", "0020|0037": "1\\0\\0\\0\\1\\0", **tags}.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{z:03d}.dcm"))
        writer.Execute(plane)
    locale.setlocale(locale.LC_CTYPE, ctype)
    return folder


def test_a_dicom_series_names_its_site_where_none_is_given(tmp_path):
    from automed.data.case import Case
    from automed.data.dataset import with_dicom_sites
    from automed.data.io import dicom_site

    institution = _dicom_series(tmp_path / "a", {"0008|0080": "St Elsewhere", "0008|0070": "Acme"})
    scanner = _dicom_series(tmp_path / "b", {"0008|0070": "Acme", "0008|1090": "Scan 3000"})
    silent = _dicom_series(tmp_path / "c", {})
    assert dicom_site(institution) == "St Elsewhere" and dicom_site(scanner) == "Acme Scan 3000"
    assert dicom_site(silent) is None
    cases = (Case("a", (institution,), None), Case("b", (scanner,), None, site="given"), Case("c", (silent,), None))
    assert [c.site for c in with_dicom_sites(cases)] == ["St Elsewhere", "given", None]
