"""The team's feature engineering: a package that lives in the repository, not on an index."""

import numpy as np


def add_interactions(x: np.ndarray) -> np.ndarray:
    """Append the products of every pair of columns."""
    n = x.shape[1]
    pairs = [x[:, i] * x[:, j] for i in range(n) for j in range(i + 1, n)]
    return np.column_stack([x, *pairs])
