"""The toy world: procedural scenes, conditions of every task, the oracle that stands for human judges, and the
simulated annotator that turns oracle scores into preference pairs."""

from onereward.toyworld.annotator import Annotation, Annotator, Pair, annotate_scores
from onereward.toyworld.oracle import THRESHOLDS, Oracle, composite, score, score_many, usable
from onereward.toyworld.world import (
    SPLITS,
    Condition,
    item_seed,
    load_condition,
    make_condition,
    make_conditions,
    save_condition,
    segmentation,
)

__all__ = [
    "SPLITS",
    "THRESHOLDS",
    "Annotation",
    "Annotator",
    "Condition",
    "Oracle",
    "Pair",
    "annotate_scores",
    "composite",
    "item_seed",
    "load_condition",
    "make_condition",
    "make_conditions",
    "save_condition",
    "score",
    "score_many",
    "segmentation",
    "usable",
]
