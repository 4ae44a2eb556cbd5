"""PyMC transforms for the batched covariance prior (imports PyMC: load only with a model)."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

from ._lkj import identity_packed

__all__ = ["BatchedCholeskyCovPacked"]


class BatchedCholeskyCovPacked(Transform):
    """PyMC's ``CholeskyCovPacked`` (log of the diagonal entries) for a batch of packed factors (K, P).

    Elementwise switches on a constant mask instead of indexing a batch of packed
    vectors: PyTensor has no C code for that advanced indexing, and its Python
    ops cost ~5 us each per NUTS step. Forward and backward agree with
    ``CholeskyCovPacked`` (tested).
    """

    name = "batched-cholesky-cov-packed"

    def __init__(self, n_features: int):
        self.n_features = int(n_features)

    def _is_diagonal(self) -> np.ndarray:
        return identity_packed(self.n_features).astype(bool)

    def forward(self, value, *inputs):
        return pt.switch(self._is_diagonal(), pt.log(value), value)

    def backward(self, value, *inputs):
        return pt.switch(self._is_diagonal(), pt.exp(value), value)

    def log_jac_det(self, value, *inputs):
        return pt.sum(pt.switch(self._is_diagonal(), value, 0.0), axis=-1)
