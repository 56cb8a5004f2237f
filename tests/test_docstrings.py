"""Every public name (the `__all__` of augpipe, loaders and ssl_train) has a docstring in the
Google style: a function's documents its arguments (`Args:`) and what it returns (`Returns:`),
a class's says what it is. The examples in them run (doctest)."""
import doctest
import inspect

import pytest

import augpipe
import loaders
import ssl_train

PUBLIC = [(module, name) for module in (augpipe, loaders, ssl_train) for name in module.__all__]


@pytest.mark.parametrize("module, name", PUBLIC, ids=[f"{m.__name__}.{n}" for m, n in PUBLIC])
def test_every_public_name_is_documented(module, name):
    obj = getattr(module, name)
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{module.__name__}.{name} has no docstring"
    if inspect.isfunction(obj):
        params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
        assert not params or "Args:" in doc, f"{module.__name__}.{name}: no Args: section"
        assert "Returns:" in doc or "Yields:" in doc, f"{module.__name__}.{name}: no Returns: section"


def test_the_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    ran = 0
    for module, name in PUBLIC:
        for test in finder.find(getattr(module, name), f"{module.__name__}.{name}"):
            if test.examples:
                ran += 1
                runner.run(test)
    assert ran >= 2 and runner.failures == 0
