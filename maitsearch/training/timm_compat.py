"""timm's RandAugment under Pillow 13, fixed on import.

Pillow 13 refuses ``ImageOps.posterize(image, 0)``, which timm's RandAugment (timm 1.0.31, and
the main-branch train.py and auto_augment.py read at commit aa4b585) asks for at full
magnitude: DeiT's ``rand-m9-mstd0.5-inc1`` draws it for about 2% of its posterize ops, and the
training crashes there, timm's own train.py included. Where Pillow refuses, importing this
module makes timm's posterize op keep zero bits as Pillow 12 did: a black image, which is what
timm means (its policies note the black image). Elsewhere it changes nothing.

The deit recipe imports it; timm's train.py can too: ``--device-modules maitsearch
maitsearch.training.timm_compat`` (docs/GPU.md).
"""

from __future__ import annotations


def posterize_keeping_zero_bits(img, bits_to_keep, **kwargs):
    """timm's posterize op, with zero bits kept as Pillow 12 kept them: every pixel 0."""
    from timm.data import auto_augment

    if bits_to_keep < 1:
        return img.point([0] * 256 * len(img.getbands()))
    return auto_augment.posterize(img, bits_to_keep, **kwargs)


def pillow_refuses_zero_bits() -> bool:
    from PIL import Image, ImageOps

    try:
        ImageOps.posterize(Image.new("L", (1, 1)), 0)
    except ValueError:
        return True
    return False


def apply() -> None:
    from timm.data import auto_augment

    if not pillow_refuses_zero_bits():
        return
    for name, op in list(auto_augment.NAME_TO_OP.items()):
        if op is auto_augment.posterize:
            auto_augment.NAME_TO_OP[name] = posterize_keeping_zero_bits


apply()
