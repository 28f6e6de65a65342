"""Datasets: digits split, batching, real torchvision and ImageFolder loaders on on-disk fixtures."""

import struct

import numpy as np
import pytest
import torch
from PIL import Image
from maitsearch.data import DataError, load_data
from maitsearch.data.images import random_crop, stratified_split
from maitsearch.data.digits import CanvasTask


def test_digits_split_is_fixed_stratified_and_disjoint():
    a, b = load_data("digits"), load_data("digits")
    sizes = {name: a.size(name) for name in ("train", "val", "test")}
    assert sum(sizes.values()) == 1797 and sizes["test"] >= 350
    for name in sizes:
        assert torch.equal(a.splits[name][0], b.splits[name][0])
        counts = torch.bincount(a.splits[name][1], minlength=10).float()
        assert counts.min() / counts.max() > 0.8, f"{name} is stratified"
    assert a.image_size == 16 and a.in_chans == 1 and a.splits["train"][0].shape[1:] == (1, 16, 16)


def test_the_digits_read_from_sklearns_file_are_load_digits(monkeypatch):
    """The file read that spares every process scikit-learn's import gives load_digits' arrays,
    and load_digits itself is the fallback when the file is not where it was."""
    import importlib.util

    from sklearn.datasets import load_digits

    from maitsearch.data.digits import digits_arrays

    reference = load_digits()
    pixels, labels = digits_arrays()
    assert np.array_equal(pixels, reference.data) and np.array_equal(labels, reference.target)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    pixels, labels = digits_arrays()
    assert np.array_equal(pixels, reference.data) and np.array_equal(labels, reference.target)


def test_stratified_split_proportions_by_hand():
    labels = torch.tensor([0] * 10 + [1] * 20)
    index = stratified_split(labels, {"train": 0.5, "val": 0.2, "test": 0.3}, seed=0)
    assert [len(index[n]) for n in ("train", "val", "test")] == [15, 6, 9]
    assert sorted(torch.cat(list(index.values())).tolist()) == list(range(30))
    assert (labels[index["val"]] == 0).sum() == 2


def test_batches_are_normalised_and_reproducible():
    data = load_data("digits")
    x = torch.cat([x for x, _ in data.batches("train", 100)])
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01
    first = [y for _, y in data.batches("train", 64, shuffle=True, seed=3)]
    again = [y for _, y in data.batches("train", 64, shuffle=True, seed=3)]
    other = [y for _, y in data.batches("train", 64, shuffle=True, seed=4)]
    assert all(torch.equal(p, q) for p, q in zip(first, again))
    assert not all(torch.equal(p, q) for p, q in zip(first, other))


def test_random_crop_shifts_each_image_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = random_crop(x, 1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for image in out:  # every crop is the original shifted by at most one pixel, zero filled
        shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                  if torch.equal(image[0], torch.roll(x[0, 0], (dy, dx), (0, 1)) * _inside(dy, dx))]
        assert shifts, image
    assert len({tuple(img.flatten().tolist()) for img in out}) > 3


def _inside(dy, dx):
    mask = torch.ones(4, 4)
    if dy == 1:
        mask[0] = 0
    if dy == -1:
        mask[-1] = 0
    if dx == 1:
        mask[:, 0] = 0
    if dx == -1:
        mask[:, -1] = 0
    return mask


def write_idx(folder, prefix, images, labels):
    """MNIST's own idx format: big-endian magic, sizes, then bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_mnist_format_fixture_loads_through_torchvision(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    train_y = np.repeat(np.arange(10, dtype=np.uint8), 20)
    test_x = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    test_y = np.repeat(np.arange(10, dtype=np.uint8), 5)
    write_idx(tmp_path / folder / "raw", "train", train_x, train_y)
    write_idx(tmp_path / folder / "raw", "t10k", test_x, test_y)
    data = load_data(name, data_dir=tmp_path, image_size=16)
    assert (data.size("train"), data.size("val"), data.size("test")) == (180, 20, 50)
    assert data.num_classes == 10 and data.in_chans == 1 and data.image_size == 16
    assert torch.equal(data.splits["test"][1], torch.tensor(test_y, dtype=torch.long))
    full = load_data(name, data_dir=tmp_path)  # native size: the bytes come through unchanged
    assert torch.equal(full.splits["test"][0][:, 0], torch.tensor(test_x))
    x, y = next(full.batches("train", 32, shuffle=True))
    assert x.shape == (32, 1, 28, 28) and torch.isfinite(x).all()


def test_image_folder_fixture(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    data = load_data(str(tmp_path), image_size=16)
    assert (data.size("train"), data.size("val"), data.size("test")) == (12, 4, 4)
    assert data.num_classes == 2 and data.splits["train"][0].shape == (12, 3, 16, 16)


@pytest.mark.parametrize("make,match", [
    (lambda tmp: ("mnist", tmp / "absent"), r"--data-dir .*absent: no such directory for mnist .*--download"),
    (lambda tmp: ("mnist", tmp), r"--data-dir .*: cannot read mnist: .*\(add --download to fetch it\)"),
    (lambda tmp: ("imagenet-ish", None), r"--data imagenet-ish: unknown dataset and no such folder"),
    (lambda tmp: (str(tmp), None), r"--data .*: the folder is empty"),
    (lambda tmp: (str(tmp / "absent" / "x"), None), r"--data .*absent/x: not a folder"),
])
def test_bad_data_is_one_clear_line(tmp_path, make, match):
    name, data_dir = make(tmp_path)
    with pytest.raises(DataError, match=match) as info:
        load_data(name, data_dir=data_dir)
    assert "\n" not in str(info.value)


def test_folder_without_train_split(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="expected an ImageFolder tree with train/"):
        load_data(str(tmp_path))


def test_canvas_task_is_deterministic_and_splits_source_digits():
    task = CanvasTask("t", canvas=20, digit=10, clutter=0, copies=2)
    a, b = task.build(seed=0), task.build(seed=0)
    assert torch.equal(a.splits["test"][0], b.splits["test"][0])
    images, labels = a.splits["train"]
    n = len(labels) // 2
    assert a.image_size == 20 and len(labels) == 2 * n and torch.equal(labels[:n], labels[n:])
    # the two copies of a source digit hold the same ink at different places
    ink_first, ink_second = images[:n].float().sum((1, 2, 3)), images[n:].float().sum((1, 2, 3))
    torch.testing.assert_close(ink_first, ink_second)
    assert (images[:n] != images[n:]).flatten(1).any(1).float().mean() > 0.9
    # and the ink of each image fits in one digit-sized box
    rows = (images[:, 0] > 0).any(2)
    extent = rows.float().flip(1).argmax(1) * -1 + rows.shape[1] - rows.float().argmax(1)
    assert (extent <= 10).all()


def test_canvas_clutter_adds_ink_from_other_digits():
    clean = CanvasTask("t", canvas=20, digit=10, clutter=0).build()
    cluttered = CanvasTask("t", canvas=20, digit=10, clutter=3).build()
    assert cluttered.splits["train"][0].float().sum() > clean.splits["train"][0].float().sum()


def test_large_image_folder_streams_from_disk(tmp_path):
    from maitsearch.data.sources import StreamingFolderData, load_folder_data

    rng = np.random.default_rng(1)
    for split, count in (("train", 5), ("val", 2)):
        for cls in ("a", "b", "c"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    data = load_folder_data(tmp_path, image_size=24, max_in_memory=10)
    assert isinstance(data, StreamingFolderData)
    assert (data.size("train"), data.size("val"), data.num_classes) == (15, 6, 3)
    first = [y for _, y in data.batches("train", 4, shuffle=True, seed=1)]
    again = [y for _, y in data.batches("train", 4, shuffle=True, seed=1)]
    assert all(torch.equal(a, b) for a, b in zip(first, again)), "the order depends on the seed only"
    x, y = next(data.batches("val", 6))
    assert x.shape == (6, 3, 24, 24) and y.tolist() == [0, 0, 1, 1, 2, 2]


def test_mirror_task_labels_are_the_mirror_by_hand():
    from maitsearch.data.digits import TASK_SPECS

    task = TASK_SPECS["digits-mirror"]
    data = task.build(seed=0)
    assert torch.equal(data.splits["val"][0], task.build(seed=0).splits["val"][0])
    images, labels = data.splits["train"]
    assert data.num_classes == 2 and 0.4 < labels.float().mean() < 0.6
    left, right = images[..., :12], images[..., 12:]
    is_mirror = (right == left.flip(-1)).flatten(1).all(1)
    has_ink = (left > 0).flatten(1).any(1)
    assert torch.equal(is_mirror[has_ink], labels[has_ink].bool()), "label 1 exactly when the right half mirrors"
    # both halves always hold the same ink: neither half alone tells the label
    torch.testing.assert_close(left.float().sum((1, 2, 3)), right.float().sum((1, 2, 3)))


def test_copy_task_labels_a_copy_within_the_jitter_by_hand():
    """Label 1 exactly when some roll of at most ``jitter`` pixels each way maps the left half
    onto the right; a non-copy is rolled further than any copy, so no roll within it matches."""
    from maitsearch.data.digits import TASK_SPECS

    task = TASK_SPECS["digits-copy"]
    images, labels = task.build(seed=0).splits["val"]
    assert 0.4 < labels.float().mean() < 0.6
    left, right = images[..., :12], images[..., 12:]
    shifts = [(dy, dx) for dy in range(-task.jitter, task.jitter + 1) for dx in range(-task.jitter, task.jitter + 1)]
    offsets = {}
    for image_left, image_right, label in zip(left, right, labels.tolist()):
        found = [s for s in shifts if torch.equal(image_left.roll(s, dims=(1, 2)), image_right)]
        assert bool(found) == bool(label), (found, label)
        if found:
            offsets[found[0]] = offsets.get(found[0], 0) + 1
    assert len(offsets) == len(shifts), "every offset within the jitter occurs"
    # both halves always hold the same ink: neither half alone tells the label
    torch.testing.assert_close(left.float().sum((1, 2, 3)), right.float().sum((1, 2, 3)))


@pytest.mark.slow
def test_mixed_task_is_its_parts_with_the_later_labels_shifted():
    import dataclasses

    from maitsearch.data.digits import DIGITS_SPLIT, TASK_SPECS, MixedTask
    from maitsearch.errors import DataError

    task = TASK_SPECS["digits-shift-copy"]
    mix = task.build(seed=1)
    parts = [part.build(seed=1) for part in task.parts]
    assert [p.num_classes for p in parts] == [10, 2] and mix.num_classes == 12
    for split, (images, labels) in mix.splits.items():
        assert torch.equal(images, torch.cat([p.splits[split][0] for p in parts]))
        assert torch.equal(labels, torch.cat([parts[0].splits[split][1], parts[1].splits[split][1] + 10]))
    assert mix.info["parts"]["digits-copy-3"]["classes_from"] == 10
    # one split over source digits for every part, or a validation digit could train in another
    with pytest.raises(DataError, match="same split"):
        MixedTask("uneven", (task.parts[0], dataclasses.replace(task.parts[1], split=DIGITS_SPLIT)))


@pytest.mark.parametrize("task,lift", [("digits-cue", 0), ("digits-cue-lift", 8)])
def test_cue_task_labels_the_digit_under_the_square_by_hand(task, lift):
    from maitsearch.data.digits import TASK_SPECS, digits_tensors
    from maitsearch.data.images import resize, to_uint8

    data = TASK_SPECS[task].build(seed=0)
    images, labels = data.splits["val"]
    sources, source_labels = digits_tensors()
    label_of = {}
    for digit, label in zip(to_uint8(resize(sources, 12).clamp(0, 1)), source_labels.tolist()):
        label_of.setdefault(digit.numpy().tobytes(), set()).add(label)
    top = images[:, 0, :3] > 0  # the square: 3x3 pixels, over one half only
    assert (top.sum((1, 2)) == 9).all()
    right = top[:, :, 12:].any(2).any(1)
    assert not (top[:, :, :12].any(2).any(1) & right).any()
    assert not images[:, 0, 3:12 - lift].any(), "nothing between the square and the highest a digit sits"
    heights = set()
    for image, label, is_right in zip(images, labels.tolist(), right.tolist()):
        half = image[:, :, 12:] if is_right else image[:, :, :12]
        # the digit's top row, read off the image: the first inked row below the square's band
        inked = half[0, 3:].any(1).nonzero()
        top_row = 3 + int(inked[0]) if len(inked) else 12
        candidates = [row for row in range(12 - lift, 13) if row <= top_row]
        found = [row for row in candidates if half[:, row:row + 12].contiguous().numpy().tobytes() in label_of]
        assert found, "the marked half holds a whole source digit"
        assert label in set().union(*(label_of[half[:, row:row + 12].contiguous().numpy().tobytes()] for row in found))
        assert not half[:, found[-1] + 12:].any() and not half[:, 3:found[0]].any(), "and nothing else"
        heights.add(found[-1])
    assert len(heights) == lift + 1, "every height from the bottom edge to the lift is used"
