"""Labelled image data sets, as tensors of images in [0, 1].

The embedded default is Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, read by
torchvision's own loader once the IDX files are unpacked into ``root/FashionMNIST/raw``.
torchvision's CIFAR-10 / MNIST (from a local root), ``ImageFolder``, foolbox's 20 labelled
ImageNet images (``foolbox_imagenet``, offline) and those plus scikit-image's photos with an
unambiguous ImageNet class (``imagenet_samples``, offline) are selectable by config.
"""

from __future__ import annotations

import gzip
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from metamers.store import atomic_path

if TYPE_CHECKING:
    import torchvision

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# scikit-image's sample photos (CC0, in its wheel) that a person would give one ImageNet-1k
# class, by ``skimage.data`` function. Left out, no single class: astronaut (a person), rocket
# (missile or projectile), camera (a cameraman, grey), horse (a silhouette; the only horse
# class is sorrel), coins, clock (motion-blurred), stereo_motorcycle (no motorcycle class).
SKIMAGE_IMAGENET_LABELS = {
    "chelsea": 281,  # tabby: a striped tawny domestic cat (the EfficientNets say Egyptian cat)
    "coffee": 967,  # espresso: a small cup of espresso with crema, on its saucer
}


@dataclass
class LabelledImages:
    """Images (N, C, H, W) float32 in [0, 1], integer labels (N,) and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def unpack_fashion_mnist(root: Path, source_dir: Path) -> Path:
    """Gunzip Debian's Fashion-MNIST IDX files into ``root/FashionMNIST/raw`` (idempotent)."""
    raw_dir = Path(root) / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_FILES:
        target = raw_dir / name
        if target.exists():
            continue
        packed = Path(source_dir) / f"{name}.gz"
        if not packed.exists():
            raise FileNotFoundError(
                f"Fashion-MNIST file {packed} is missing. Install it with "
                "`apt-get install dataset-fashion-mnist` (Debian), or put the IDX files in "
                f"{raw_dir}, or set data.download: true on a machine with internet."
            )
        with (atomic_path(target) as partial, gzip.open(packed, "rb") as source,
              open(partial, "wb") as sink):
            shutil.copyfileobj(source, sink)
    return raw_dir


def _to_float_images(array: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    tensor = torch.from_numpy(np.asarray(array))
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(-1)
    return tensor.permute(0, 3, 1, 2).contiguous().float().div(255.0)


def load_dataset(spec: dict, train: bool) -> LabelledImages:
    """Load the train or test split of the data set described by the ``data`` config slice.

    ``spec["name"]`` is one of ``fashion_mnist``, ``mnist``, ``cifar10`` (torchvision loaders
    reading ``spec["root"]``), ``image_folder`` (``root/train`` and ``root/test`` folders of
    class sub-folders, resized to ``spec["image_size"]``), ``foolbox_imagenet`` or
    ``imagenet_samples`` (test only).
    """
    import torchvision  # seconds of import: only in jobs that read a data set

    name, download = spec["name"], bool(spec.get("download"))  # the schema fills both in
    if name == "fashion_mnist":
        root = Path(spec["root"])
        if not download:
            unpack_fashion_mnist(root, Path(spec["source_dir"]))
        dataset = torchvision.datasets.FashionMNIST(root, train=train, download=download)
        return LabelledImages(_to_float_images(dataset.data.numpy()), dataset.targets.long(),
                              list(dataset.classes))
    if name == "mnist":
        dataset = torchvision.datasets.MNIST(Path(spec["root"]), train=train, download=download)
        return LabelledImages(_to_float_images(dataset.data.numpy()), dataset.targets.long(),
                              list(dataset.classes))
    if name == "cifar10":
        dataset = torchvision.datasets.CIFAR10(Path(spec["root"]), train=train, download=download)
        return LabelledImages(_to_float_images(dataset.data), torch.tensor(dataset.targets),
                              list(dataset.classes))
    if name == "image_folder":
        return _load_image_folder(_split_folder(spec, train), int(spec["image_size"]))
    if name in ("foolbox_imagenet", "foolbox_mnist", "imagenet_samples"):
        if train:
            raise ValueError(f"{name} is a few labelled test images, no training split: use it "
                             "with pretrained (external) models only.")
        if name == "foolbox_mnist":
            return load_foolbox_mnist()
        if name == "imagenet_samples":
            return load_imagenet_samples(int(spec["image_size"]))
        return load_foolbox_imagenet(int(spec["image_size"]))
    raise ValueError(
        f"Unknown data set {name!r}: choose fashion_mnist, mnist, cifar10, image_folder, "
        "foolbox_imagenet, foolbox_mnist or imagenet_samples."
    )


def foolbox_data_dir() -> Path:
    """foolbox's ``data/`` folder (labelled sample images of several data sets)."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("foolbox_imagenet, foolbox_mnist and imagenet_samples read the "
                                "sample images that ship with the PyPI package foolbox: pip "
                                "install foolbox.")
    return Path(spec.submodule_search_locations[0]) / "data"


def _foolbox_samples(prefix: str) -> tuple[list[Path], torch.Tensor]:
    """foolbox's sample files ``<prefix>_<index>_<label>.*`` in index order, and the labels."""
    files = sorted(foolbox_data_dir().glob(f"{prefix}_*_*.*"),
                   key=lambda path: int(path.stem.split("_")[1]))
    return files, torch.tensor([int(path.stem.split("_")[2]) for path in files])


def load_foolbox_mnist() -> LabelledImages:
    """foolbox's 20 labelled MNIST test images, 28 x 28 grey."""
    from torchvision.transforms import v2

    files, labels = _foolbox_samples("mnist")
    images = torch.stack([v2.functional.to_dtype(v2.functional.to_image(
        Image.open(path).convert("L")), torch.float32, scale=True) for path in files])
    return LabelledImages(images, labels, [str(digit) for digit in range(10)])


def _imagenet_images(photos: list[Image.Image], image_size: int) -> torch.Tensor:
    """RGB photos resized (shorter side) and centre-cropped to ``image_size``, (N, 3, H, W)."""
    from torchvision.transforms import v2

    transform = v2.Compose([v2.ToImage(), v2.Resize(image_size), v2.CenterCrop(image_size),
                            v2.ToDtype(torch.float32, scale=True)])
    return torch.stack([transform(photo.convert("RGB")) for photo in photos])


def _imagenet_class_names() -> list[str]:
    import torchvision

    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def load_foolbox_imagenet(image_size: int) -> LabelledImages:
    """foolbox's 20 labelled ImageNet validation images (``imagenet_<i>_<label>.jpg``), resized
    (shorter side) and centre-cropped to ``image_size``; classes are ImageNet-1k's 1,000."""
    files, labels = _foolbox_samples("imagenet")
    images = _imagenet_images([Image.open(path) for path in files], image_size)
    return LabelledImages(images, labels, _imagenet_class_names())


def load_skimage_imagenet(image_size: int) -> LabelledImages:
    """scikit-image's photos of :data:`SKIMAGE_IMAGENET_LABELS`, in its order, with their
    ImageNet-1k labels, resized and centre-cropped like foolbox's."""
    try:
        import skimage.data
    except ImportError as error:
        raise FileNotFoundError("imagenet_samples reads sample photos that ship with the PyPI "
                                "package scikit-image: pip install scikit-image.") from error
    photos = [Image.fromarray(getattr(skimage.data, name)()) for name in SKIMAGE_IMAGENET_LABELS]
    return LabelledImages(_imagenet_images(photos, image_size),
                          torch.tensor(list(SKIMAGE_IMAGENET_LABELS.values())),
                          _imagenet_class_names())


def load_imagenet_samples(image_size: int) -> LabelledImages:
    """foolbox's 20 labelled ImageNet images, then scikit-image's labelled photos."""
    parts = (load_foolbox_imagenet(image_size), load_skimage_imagenet(image_size))
    return LabelledImages(torch.cat([part.images for part in parts]),
                          torch.cat([part.labels for part in parts]), parts[0].class_names)


def _image_folder(folder: Path, image_size: int) -> torchvision.datasets.ImageFolder:
    """A torchvision ``ImageFolder`` of ``folder``; images decode only when indexed."""
    import torchvision
    from torchvision.transforms import v2

    if not folder.is_dir():
        raise FileNotFoundError(f"Image folder {folder} does not exist: it must hold one "
                                "sub-folder of images per class.")
    transform = v2.Compose([
        v2.ToImage(), v2.Resize(image_size), v2.CenterCrop(image_size),
        v2.ToDtype(torch.float32, scale=True),
    ])
    try:
        dataset = torchvision.datasets.ImageFolder(folder, transform=transform)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"Image folder {folder} holds no images in class sub-folders "
                                f"({error}): put each class's images in {folder}/<class>/."
                                ) from error
    if len(dataset.classes) < 2:
        raise ValueError(f"Image folder {folder} has a single class {dataset.classes}: "
                         "recognizability and the nulls need at least two; add class "
                         "sub-folders.")
    return dataset


def _decode(dataset: torchvision.datasets.ImageFolder, index: int) -> torch.Tensor:
    """Image ``index`` of an image folder; an unreadable file is named with the fix."""
    path = dataset.samples[index][0]
    try:
        return dataset[index][0]
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"Image {path} cannot be read ({error}): replace or remove it."
                         ) from error


def _load_image_folder(folder: Path, image_size: int) -> LabelledImages:
    dataset = _image_folder(folder, image_size)
    images = torch.stack([_decode(dataset, index) for index in range(len(dataset))])
    return LabelledImages(images, torch.tensor(dataset.targets), list(dataset.classes))


def _split_folder(spec: dict, train: bool) -> Path:
    return Path(spec["root"]) / ("train" if train else "test")


def load_sample(spec: dict, train: bool, choose: Callable[[torch.Tensor], np.ndarray]
                ) -> tuple[LabelledImages, np.ndarray, int]:
    """The images of a split that ``choose(labels)`` indexes, those indices and the split size.

    The split is read once; an image folder decodes only the chosen images.
    """
    if spec["name"] == "image_folder":
        dataset = _image_folder(_split_folder(spec, train), int(spec["image_size"]))
        labels = torch.tensor(dataset.targets)
        indices = choose(labels)
        images = torch.stack([_decode(dataset, int(index)) for index in indices])
        class_names = list(dataset.classes)
    else:
        data = load_dataset(spec, train)
        labels, class_names = data.labels, data.class_names
        indices = choose(labels)
        images = data.images[torch.as_tensor(indices)]
    chosen = torch.as_tensor(indices)
    return LabelledImages(images, labels[chosen], class_names), indices, len(labels)


def distinct_sample(spec: dict, train: bool, count: int, seed: int) -> tuple[torch.Tensor, int]:
    """``count`` images of a split with distinct pixels, in a seeded random order (an image
    folder decodes only those and a few more): (count, C, H, W), and how many exact duplicates
    of earlier ones were passed over. Raises if the split has fewer distinct images."""
    rng = np.random.default_rng(seed)
    sample, _, split_size = load_sample(  # a few more, for the duplicates passed over
        spec, train, lambda labels: rng.permutation(len(labels))[:count + count // 20 + 2])
    rows = np.ascontiguousarray(sample.images.flatten(1).numpy())
    _, first = np.unique(rows.view(np.dtype((np.void, rows.strides[0]))), return_index=True)
    kept = np.sort(first)
    if len(kept) < count:
        raise ValueError(f"{count} distinct images were asked for; the "
                         f"{'training' if train else 'test'} split of {split_size} images "
                         f"gave {len(kept)}.")
    return sample.images[kept[:count]], len(rows) - len(kept)
