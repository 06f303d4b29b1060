"""Datasets for host training: Fashion-MNIST (Debian's dataset-fashion-mnist), an .npz with
`x`/`y`, or a folder of class sub-folders of images.

Images are kept as uint8 at their own size and converted one sample at a time to what the
model's input wants: resized (bilinear) to its height and width, grey <-> RGB matched to its
channels, and pixel values [0, 255] mapped linearly onto the whole int8 range
(q = pixel - 128), whatever the input's scale: the model sees the full range of codes.
"""
from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TTError
from .ir import Tensor

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff"}


class DataError(TTError):
    pass


@dataclass
class Dataset:
    name: str
    images: np.ndarray        # uint8 [N, H, W] or [N, H, W, C]
    labels: np.ndarray        # int64 [N]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load(spec: str, input_shape: tuple[int, ...] | None = None) -> Dataset:
    if spec == "fashion-mnist":
        return fashion_mnist()
    path = Path(spec)
    if not path.exists():
        raise DataError(f"--data {spec}: no such file or folder (use fashion-mnist, an .npz "
                        "with x and y, or a folder of class sub-folders)")
    if path.is_dir():
        return image_folder(path, input_shape)
    if path.suffix == ".npz":
        return npz(path)
    raise DataError(f"--data {spec}: not an .npz file or a folder")


def _idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(folder: Path = FASHION_MNIST_DIR) -> Dataset:
    images = folder / "train-images-idx3-ubyte.gz"
    labels = folder / "train-labels-idx1-ubyte.gz"
    if not images.exists():
        raise DataError(f"Fashion-MNIST not found in {folder}: install Debian's "
                        "dataset-fashion-mnist (make setup does)")
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot"]
    return Dataset("fashion-mnist", _idx(images), _idx(labels).astype(np.int64), names)


def npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f or "y" not in f:
                raise DataError(f"{path}: needs arrays 'x' (images) and 'y' (labels), has "
                                f"{sorted(f.files)}")
            x, y = f["x"], f["y"]
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npz ({exc})") from None
    if x.ndim not in (3, 4) or len(x) != len(y) or y.ndim != 1:
        raise DataError(f"{path}: x must be [N, H, W] or [N, H, W, C] and y [N], got "
                        f"{x.shape} and {y.shape}")
    if x.ndim == 4 and x.shape[3] not in (1, 3):
        raise DataError(f"{path}: images must be grey (1 channel) or RGB (3), got "
                        f"{x.shape[3]} channels")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: labels y must be integers, got {y.dtype}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.floating) or np.nanmin(x) < 0 or np.nanmax(x) > 1:
            raise DataError(f"{path}: x must be uint8 pixels or floats in [0, 1]")
        x = np.rint(x * 255).astype(np.uint8)
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: label {int(y.min())} is negative")
    n_classes = int(y.max()) + 1 if len(y) else 0
    return Dataset(path.stem, x, y.astype(np.int64), [str(i) for i in range(n_classes)])


def image_folder(path: Path, input_shape: tuple[int, ...] | None) -> Dataset:
    from PIL import Image, UnidentifiedImageError
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{path}: no class sub-folders")
    h, w, c = (input_shape[1], input_shape[2], input_shape[3]) if input_shape else (None,) * 3
    images, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((path / name).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if c == 1 else "RGB")
                    if h is not None:
                        im = im.resize((w, h), Image.BILINEAR)
                    images.append(np.asarray(im, np.uint8))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{f}: not a readable image ({exc})") from None
            labels.append(label)
    if not images:
        raise DataError(f"{path}: no images in the class sub-folders")
    return Dataset(path.name, np.stack(images), np.array(labels, np.int64), classes)


def to_model_input(image: np.ndarray, t: Tensor) -> np.ndarray:
    """One uint8 image -> the int8 input tensor of the model."""
    from PIL import Image
    if t.dtype != "int8" or len(t.shape) != 4 or t.shape[0] != 1:
        raise DataError(f"model input {t.name} is {t.dtype}{list(t.shape)}; images need an "
                        "int8 [1, H, W, C] input")
    _, h, w, c = t.shape
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    mode = "L" if image.ndim == 2 else "RGB"
    im = Image.fromarray(image, mode)
    if im.size != (w, h):
        im = im.resize((w, h), Image.BILINEAR)
    if c == 1 and mode == "RGB":
        im = im.convert("L")
    arr = np.asarray(im, np.int16)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] != c:
        if arr.shape[2] == 1:
            arr = np.repeat(arr, c, axis=2)
        else:
            raise DataError(f"cannot map {arr.shape[2]}-channel images to a {c}-channel input")
    return (arr - 128).astype(np.int8).reshape(t.shape)
