"""The API reference: public names are documented and the pdoc site builds.

Build it with: python -m pdoc --docformat google -o site gmmjax gmmjax.sklearn gmmjax.interop
gmmjax.metrics gmmjax.nn gmmjax.train gmmjax.data gmmjax.mfa
"""

import ast
import importlib
import inspect
import pathlib
import re
import warnings

import pdoc
import pytest
import pdoc.doc

import gmmjax
from gmmjax import interop
from gmmjax.sklearn import GaussianMixture

MODULES = ["gmmjax", "gmmjax.sklearn", "gmmjax.interop", "gmmjax.metrics", "gmmjax.nn", "gmmjax.train", "gmmjax.data",
           "gmmjax.mfa"]
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


# --- the README and docs/ pages -------------------------------------------------------------------

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Names a snippet may use as the root of an attribute chain, and what they are.
ROOTS = {
    "gmmjax": "gmmjax",
    "interop": "gmmjax.interop",
    "vade": "gmmjax.nn.vade",
    "train": "gmmjax.train",
}


def _blocks(page, language):
  return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def test_readme_is_a_front_page():
  readme = (REPO / "README.md").read_text()
  assert len(readme.splitlines()) <= 160
  for page in PAGES[1:]:
    assert f"docs/{page.name}" in readme, f"README does not link {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
  for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
    if "://" not in target:
      assert (page.parent / target).exists(), f"{page.name} links a missing {target}"


def _attribute_chains(tree):
  """`("gmmjax", "nn", "vade", "prior_to_gmm")` for every outermost `a.b.c` in `tree`."""
  inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute) and id(node) not in inner:
      chain = []
      while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
      if isinstance(node, ast.Name):
        yield (node.id, *reversed(chain))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_snippets_parse_and_name_real_functions(page):
  """Snippets use data they do not define, so they are parsed, not run; every `gmmjax` name in them
  must exist, so a renamed function fails here before a reader finds it."""
  for code in _blocks(page, "python"):
    tree = ast.parse(code)
    for root, *attrs in _attribute_chains(tree):
      if root not in ROOTS:
        continue
      obj = importlib.import_module(ROOTS[root])
      for i, attr in enumerate(attrs):
        if not hasattr(obj, attr) and inspect.ismodule(obj):
          try:
            importlib.import_module(f"{obj.__name__}.{attr}")
          except ImportError:
            pass
        if inspect.ismodule(obj) or i == 0:
          assert hasattr(obj, attr), f"{page.name}: {'.'.join([root, *attrs[: i + 1]])} does not exist"
          obj = getattr(obj, attr)
        else:
          break  # an attribute of a returned value (result.params, ...)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_shell_commands_name_real_modules_configs_and_scripts(page):
  for code in _blocks(page, "bash"):
    for module, rest in re.findall(r"python -m (experiments(?:\.\w+)+)([^\n&|;]*)", code):
      path = REPO / (module.replace(".", "/") + ".py")
      assert path.exists(), f"{page.name}: no module {module}"
      config = re.search(r"--config (\w+)", rest)
      if config:
        configs = path.parent / "configs"
        assert (configs / f"{config.group(1)}.py").exists(), f"{page.name}: no config {config.group(1)}"
    for script in re.findall(r"\bbash ([\w./-]+)", code):
      assert (REPO / script).exists(), f"{page.name}: no script {script}"
