"""The GPU set's shared refusal: ``--device cuda`` on a machine without CUDA stops at once."""

from __future__ import annotations

import argparse


def refuse_missing_cuda(parser: argparse.ArgumentParser, device: str) -> None:
    """Exit with a usage error naming the flag when ``device`` is CUDA and none is here."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device here")
