"""gmmjax: Gaussian mixture models in JAX, and the deep generative models built on them."""

from ._em import em_step as em_step
from ._em import fit as fit
from ._em import m_step as m_step
from ._init import KMeansResult as KMeansResult
from ._init import kmeans as kmeans
from ._init import kmeans_plusplus as kmeans_plusplus
from ._logprob import component_log_prob as component_log_prob
from ._logprob import e_step as e_step
from ._logprob import log_prob as log_prob
from ._logprob import predict as predict
from ._logprob import predict_proba as predict_proba
from ._sample import sample as sample
from ._select import SelectionResult as SelectionResult
from ._select import aic as aic
from ._select import bic as bic
from ._select import n_parameters as n_parameters
from ._select import select_n_components as select_n_components
from ._stats import SuffStats as SuffStats
from ._stats import merge as merge
from ._stats import params_from_stats as params_from_stats
from ._stats import suff_stats as suff_stats
from ._types import COVARIANCE_TYPES as COVARIANCE_TYPES
from ._types import FitResult as FitResult
from ._types import GMMParams as GMMParams

__version__ = "0.1.0"

__all__ = [
    "COVARIANCE_TYPES",
    "FitResult",
    "GMMParams",
    "KMeansResult",
    "SelectionResult",
    "SuffStats",
    "aic",
    "bic",
    "component_log_prob",
    "e_step",
    "em_step",
    "fit",
    "kmeans",
    "kmeans_plusplus",
    "log_prob",
    "m_step",
    "merge",
    "n_parameters",
    "params_from_stats",
    "predict",
    "predict_proba",
    "sample",
    "select_n_components",
    "suff_stats",
]
