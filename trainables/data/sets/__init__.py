"""Every registered dataset; a new one is a new module here and one line below."""

from . import regression, small_sets, tiny_imagenet, torchvision_sets, uci

__all__ = ["regression", "small_sets", "tiny_imagenet", "torchvision_sets", "uci"]
