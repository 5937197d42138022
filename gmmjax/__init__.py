"""gmmjax: Gaussian mixture models in JAX, and the deep generative models built on them."""

from . import mfa as mfa
from ._em import em_step as em_step
from ._em import fit as fit
from ._em import fit_masked as fit_masked
from ._em import m_step as m_step
from ._em import suff_stats as suff_stats
from ._init import KMeansResult as KMeansResult
from ._init import kmeans as kmeans
from ._init import kmeans_plusplus as kmeans_plusplus
from ._logprob import component_log_prob as component_log_prob
from ._logprob import e_step as e_step
from ._logprob import log_prob as log_prob
from ._logprob import predict as predict
from ._logprob import predict_proba as predict_proba
from ._online import OnlineState as OnlineState
from ._online import online_init as online_init
from ._online import online_update as online_update
from ._sample import sample as sample
from ._select import SelectionResult as SelectionResult
from ._select import aic as aic
from ._select import bic as bic
from ._select import n_parameters as n_parameters
from ._select import select_n_components as select_n_components
from ._sharded import psum_stats as psum_stats
from ._sharded import shard_rows as shard_rows
from ._stats import SuffStats as SuffStats
from ._stats import merge as merge
from ._stats import params_from_stats as params_from_stats
from ._stats import stats_from_responsibilities as stats_from_responsibilities
from ._stream import fit_stream as fit_stream
from ._types import COVARIANCE_TYPES as _COVARIANCE_TYPES
from ._types import FitResult as FitResult
from ._types import GMMParams as GMMParams
from .variational import SVIState as SVIState
from .variational import VariationalFit as VariationalFit
from .variational import VariationalPosterior as VariationalPosterior
from .variational import VariationalPrior as VariationalPrior
from .variational import fit_variational as fit_variational
from .variational import fit_variational_stream as fit_variational_stream
from .variational import svi_init as svi_init
from .variational import svi_update as svi_update
from .variational import variational_prior as variational_prior

COVARIANCE_TYPES: tuple[str, ...] = _COVARIANCE_TYPES
"""The covariance structures a mixture can have: "full", "diag", "spherical", "tied"."""

__version__ = "0.1.0"

__all__ = [
    "COVARIANCE_TYPES",
    "FitResult",
    "GMMParams",
    "KMeansResult",
    "OnlineState",
    "SVIState",
    "SelectionResult",
    "SuffStats",
    "VariationalFit",
    "VariationalPosterior",
    "VariationalPrior",
    "aic",
    "bic",
    "component_log_prob",
    "e_step",
    "em_step",
    "fit",
    "fit_masked",
    "fit_stream",
    "fit_variational",
    "fit_variational_stream",
    "kmeans",
    "kmeans_plusplus",
    "log_prob",
    "m_step",
    "merge",
    "n_parameters",
    "online_init",
    "online_update",
    "params_from_stats",
    "predict",
    "predict_proba",
    "psum_stats",
    "sample",
    "select_n_components",
    "shard_rows",
    "stats_from_responsibilities",
    "suff_stats",
    "svi_init",
    "svi_update",
    "variational_prior",
]
