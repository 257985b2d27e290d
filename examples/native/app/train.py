"""Train a tiny LightGBM model (needs libgomp1 at import time)."""

import lightgbm as lgb
import numpy as np

rng = np.random.default_rng(0)
X = rng.normal(size=(500, 4))
y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(float)
try:
    from features import add_interactions  # only in the pipeline env

    X = add_interactions(X)
except ImportError:
    pass
booster = lgb.train(
    {"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=30
)
print(f"{X.shape[1]} features, accuracy {((booster.predict(X) > 0.5) == y).mean():.3f}")
