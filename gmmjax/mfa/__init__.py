"""Mixtures of factor analysers (MFA) and of probabilistic PCA (MPPCA).

Each component's covariance is `W W^T + diag(psi)`, `W [d, l]` with `l << d`,
so full images (d = 784) are modelled with their correlations at O(n k d l)
per pass, no `[d, d]` matrix:

  result = gmmjax.mfa.fit(key, x, n_components=50, n_factors=10)
  gmmjax.mfa.log_prob(result.params, x)           # [n] per-image log-likelihoods
  x_new, comp = gmmjax.mfa.sample(key, result.params, 64)
  filled, resp, _ = gmmjax.mfa.inpaint(result.params, x, observed)

`log_prob` is differentiable: with `to_unconstrained` / `from_unconstrained`,
`-mean(log_prob)` of mini-batches trains the mixture by Adam through
`gmmjax.train`, as Richardson and Weiss trained theirs.
"""

from ._fit import MFAOptions as MFAOptions
from ._fit import MFAStats as MFAStats
from ._fit import fit as fit
from ._fit import fit_stream as fit_stream
from ._fit import merge as merge
from ._fit import params_from_stats as params_from_stats
from ._fit import suff_stats as suff_stats
from ._model import MFAParams as MFAParams
from ._model import component_log_prob as component_log_prob
from ._model import e_step as e_step
from ._model import from_unconstrained as from_unconstrained
from ._model import inpaint as inpaint
from ._model import log_prob as log_prob
from ._model import posterior as posterior
from ._model import predict as predict
from ._model import sample as sample
from ._model import to_gmm as to_gmm
from ._model import to_unconstrained as to_unconstrained

__all__ = [
    "MFAOptions",
    "MFAParams",
    "MFAStats",
    "component_log_prob",
    "e_step",
    "fit",
    "fit_stream",
    "from_unconstrained",
    "inpaint",
    "log_prob",
    "merge",
    "params_from_stats",
    "posterior",
    "predict",
    "sample",
    "suff_stats",
    "to_gmm",
    "to_unconstrained",
]
