"""Grouped cases to numbers: weights (trimming, recalibration), hospital indices, regrouping
between scheme versions, synthetic provinces.

Other subpackages import the weights and the trimming rule from here, never from the modules
inside; modules inside ``analytics`` import the exact module (no cycle through this file)."""

from grouper.analytics.trimming import TrimRule, trim_mask
from grouper.analytics.weights import (CostSample, WeightOptions, WeightResult, attach_weights, compare_weights,
                                       compute_weights, renormalize, sample_files, weights_from_files)

__all__ = ["CostSample", "TrimRule", "WeightOptions", "WeightResult", "attach_weights", "compare_weights",
           "compute_weights", "renormalize", "sample_files", "trim_mask", "weights_from_files"]
