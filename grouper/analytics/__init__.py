"""Grouped cases to numbers: weights (trimming, recalibration), hospital indices, regrouping
between scheme versions, synthetic provinces."""
