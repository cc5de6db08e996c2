import tarfile
from pathlib import Path

import pytest
import torch

from datasets import DatasetUnavailable, list_datasets, load_dataset
from methods.registry import UnknownNameError


def test_registry_lists_every_dataset():
    assert {"cifar10", "cifar100", "stl10", "digits", "synthetic", "imagefolder:"} <= set(list_datasets())


def test_digits_is_real_sklearn_digits_resized(digits):
    from sklearn.datasets import load_digits

    raw = load_digits()
    assert digits.train.images.shape[1:] == (3, 32, 32) and digits.train.images.dtype == torch.uint8
    assert len(digits.train) + len(digits.test) == len(raw.target)
    assert digits.num_classes == 10
    # Stratified split: every class in both splits.
    assert set(digits.test.labels.tolist()) == set(range(10))
    # Grey images replicated to RGB.
    assert torch.equal(digits.train.images[:, 0], digits.train.images[:, 2])


def test_synthetic_is_seeded_and_masks_mark_the_class_template(synthetic):
    again = load_dataset("synthetic")
    assert torch.equal(synthetic.train.images, again.train.images)
    masks = synthetic.train.masks
    assert masks is not None and masks.shape == (len(synthetic.train), 1, 32, 32)
    assert (masks.sum(dim=(1, 2, 3)) == 64).all()  # one 8x8 template per image
    templates = synthetic.extra["templates"]
    # Inside the mask the pixels are the class template (+ small jitter): nearest template = the label.
    x = synthetic.train.images[:50].float() / 255
    for i in range(50):
        ys, xs = torch.nonzero(masks[i, 0], as_tuple=True)
        patch = x[i, :, ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        dist = ((templates - patch) ** 2).flatten(1).sum(1)
        assert int(dist.argmin()) == int(synthetic.train.labels[i])


def _write_tree(root: Path, classes=("cat", "dog"), n=3, size=16):
    from PIL import Image

    for split in ("train", "test"):
        for c, cls in enumerate(classes):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (size, size), (40 * c + i,) * 3).save(root / split / cls / f"{i}.png")


def test_imagefolder_reads_a_tree(tmp_path):
    _write_tree(tmp_path / "tree")
    data = load_dataset(f"imagefolder:{tmp_path / 'tree'}", root=str(tmp_path / "cache"))
    assert data.classes == ["cat", "dog"]
    assert data.train.images.shape == (6, 3, 16, 16) and data.test.images.shape == (6, 3, 16, 16)
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert int(data.train.images[4, 0, 0, 0]) == 41  # dog, image 1


def test_imagefolder_reads_a_tarball_once(tmp_path):
    _write_tree(tmp_path / "tree" / "mini")
    archive = tmp_path / "mini.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree" / "mini", arcname="mini")
    data = load_dataset(f"imagefolder:{archive}", root=str(tmp_path / "cache"))
    assert len(data.train) == 6
    assert list((tmp_path / "cache" / "extracted").iterdir())


def test_imagefolder_bad_tree_says_what_is_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="train/<class>"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "stl10"])
def test_missing_torchvision_data_names_both_fixes(name, tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name, root=str(tmp_path / "nothing"))
    assert "--download" in str(err.value) and "--data-root" in str(err.value)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="cifar10.*synthetic"):
        load_dataset("cifar11")


def test_normalize_roundtrip(digits):
    x = digits.normalize(digits.test.images[:4])
    assert torch.allclose(digits.denormalize(x), digits.test.images[:4].float() / 255, atol=1e-5)
