"""The API reference: public names are documented and the pdoc site builds.

Build it with: python -m pdoc --docformat google -o site gmmjax gmmjax.sklearn gmmjax.interop
gmmjax.metrics gmmjax.nn gmmjax.train gmmjax.data
"""

import inspect
import warnings

import pdoc
import pdoc.doc

import gmmjax
from gmmjax import interop
from gmmjax.sklearn import GaussianMixture

MODULES = ["gmmjax", "gmmjax.sklearn", "gmmjax.interop", "gmmjax.metrics", "gmmjax.nn", "gmmjax.train", "gmmjax.data"]
ESTIMATOR_METHODS = [
    "fit", "fit_predict", "predict", "predict_proba", "score", "score_samples", "sample", "bic", "aic", "to_params",
]


def test_every_public_name_has_a_docstring():
  """As pdoc renders it: a re-exported constant needs a docstring in `__init__.py`."""
  module = pdoc.doc.Module(gmmjax)
  missing = [name for name in gmmjax.__all__ if module.get(name) is None or not module.get(name).docstring.strip()]
  assert not missing, f"undocumented public names: {missing}"
  assert module.docstring.strip()


def test_estimator_and_interop_are_documented():
  assert inspect.getdoc(GaussianMixture).startswith("Gaussian mixture fitted by gmmjax")
  for name in ESTIMATOR_METHODS:
    doc = getattr(GaussianMixture, name).__doc__
    assert doc and "Returns:" in doc, name
  for name in ("to_distrax", "from_distrax", "to_tfp", "from_tfp", "to_sklearn", "from_sklearn"):
    doc = getattr(interop, name).__doc__
    assert doc and "Returns:" in doc, name


def test_site_builds(tmp_path):
  pdoc.render.configure(docformat="google")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.pdoc(*MODULES, output_directory=tmp_path)
  unresolved = [str(w.message) for w in caught if "Error parsing type annotation" in str(w.message)]
  # pdoc cannot resolve postponed annotations of NamedTuple fields (mitmproxy/pdoc#765): modules
  # that define NamedTuples do not use `from __future__ import annotations`.
  assert not unresolved, unresolved
  for page in ("gmmjax.html", "gmmjax/sklearn.html", "gmmjax/interop.html"):
    assert (tmp_path / page).stat().st_size > 1000, page
  index = (tmp_path / "gmmjax.html").read_text()
  for name in gmmjax.__all__:
    assert f'id="{name}"' in index, name
