"""Neural networks built on Gaussian mixtures: encoders/decoders, VaDE, GMVAE, DAGMM, mixture density networks, a mixture-latent GAN, transform classifiers for one-class features."""

from . import dagmm as dagmm
from . import fid as fid
from . import gan as gan
from . import geometric as geometric
from . import gmvae as gmvae
from . import mdn as mdn
from . import networks as networks
from . import vade as vade
from .dagmm import DAGMM as DAGMM
from .gan import Discriminator as Discriminator
from .gan import Generator as Generator
from .gan import MixtureLatent as MixtureLatent
from .mdn import MDNHead as MDNHead
from .mdn import MDNParams as MDNParams
from .networks import ARCHITECTURES as ARCHITECTURES
from .networks import IMAGE_SHAPE as IMAGE_SHAPE
from .networks import LIKELIHOODS as LIKELIHOODS
from .networks import ConvDecoder as ConvDecoder
from .networks import ConvEncoder as ConvEncoder
from .networks import MLPDecoder as MLPDecoder
from .networks import MLPEncoder as MLPEncoder
from .networks import bernoulli_log_prob as bernoulli_log_prob
from .networks import continuous_bernoulli_log_prob as continuous_bernoulli_log_prob
from .networks import gaussian_log_prob as gaussian_log_prob
from .networks import log_likelihood as log_likelihood
from .networks import make_decoder as make_decoder
from .networks import make_encoder as make_encoder
from .networks import mean_image as mean_image

__all__ = [
    "ARCHITECTURES",
    "DAGMM",
    "Discriminator",
    "Generator",
    "MDNHead",
    "MDNParams",
    "MixtureLatent",
    "dagmm",
    "fid",
    "gan",
    "geometric",
    "gmvae",
    "mdn",
    "ConvDecoder",
    "ConvEncoder",
    "IMAGE_SHAPE",
    "LIKELIHOODS",
    "MLPDecoder",
    "MLPEncoder",
    "bernoulli_log_prob",
    "continuous_bernoulli_log_prob",
    "gaussian_log_prob",
    "log_likelihood",
    "make_decoder",
    "make_encoder",
    "mean_image",
    "networks",
    "vade",
]
