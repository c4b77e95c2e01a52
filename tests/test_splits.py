"""The stratified split: stratified when it can be, and said (a warning naming the smallest class) when not."""
import warnings

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from medvid_core.splits import UnstratifiedSplitWarning, stratified_split


def test_stratified_when_it_can_be_and_silent():
    labels = np.array([0] * 10 + [1] * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train, test = stratified_split(np.arange(20), labels, test_size=0.3, seed=3)
    assert np.bincount(labels[test]).tolist() == [3, 3]
    ref = train_test_split(np.arange(20), test_size=0.3, random_state=3, stratify=labels)
    assert train.tolist() == ref[0].tolist() and test.tolist() == ref[1].tolist()


def test_a_class_of_one_warns_naming_it_and_splits_unstratified():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])  # class 2: one clip
    with pytest.warns(UnstratifiedSplitWarning, match=r"smallest class, 2, has 1 of 7"):
        train, test = stratified_split(np.arange(7), labels, test_size=0.3, seed=0)
    ref = train_test_split(np.arange(7), test_size=0.3, random_state=0)  # the same seed, unstratified
    assert train.tolist() == ref[0].tolist() and test.tolist() == ref[1].tolist()


def test_string_labels_are_named_plainly():
    labels = np.array(["ICH", "ICH", "ICH", "none"], dtype=object)
    with pytest.warns(UnstratifiedSplitWarning, match=r"smallest class, 'none', has 1 of 4"):
        stratified_split(np.arange(4), labels, test_size=0.5, seed=0)
