"""Every public name is documented the numpydoc way, with an example."""

import inspect

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

import bayesgmm
from bayesgmm import plotting

PUBLIC = [getattr(bayesgmm, name) for name in bayesgmm.__all__]
PLOTS = [getattr(plotting, name) for name in plotting.__all__]


@pytest.mark.parametrize("obj", PUBLIC, ids=bayesgmm.__all__)
def test_public_docstrings_have_parameters_returns_examples(obj):
    assert obj.__doc__, f"{obj.__name__} has no docstring"
    if inspect.isclass(obj):
        doc = ClassDoc(obj)
        if issubclass(obj, Warning):
            return  # a warning category has nothing to parametrise
        assert doc["Parameters"] or doc["Attributes"], f"{obj.__name__}: no Parameters/Attributes"
        assert doc["Examples"], f"{obj.__name__}: no Examples"
    else:
        doc = FunctionDoc(obj)
        assert doc["Parameters"], f"{obj.__name__}: no Parameters"
        assert doc["Returns"], f"{obj.__name__}: no Returns"
        assert doc["Examples"], f"{obj.__name__}: no Examples"


@pytest.mark.parametrize("obj", PLOTS, ids=plotting.__all__)
def test_plot_docstrings_have_parameters_and_returns(obj):
    doc = FunctionDoc(obj)
    assert doc["Parameters"] and doc["Returns"]


def test_api_page_lists_every_public_name():
    from pathlib import Path

    api = (Path(__file__).parents[1] / "docs" / "api.rst").read_text()
    for name in bayesgmm.__all__:
        assert f"   {name}\n" in api, name
