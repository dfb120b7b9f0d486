"""dlbio_teach: the companion package of *Deep learning for bioimage analysis, done right*.

Modules, in the order data flows through them: :mod:`runtime`, :mod:`data`,
:mod:`synthetic`, :mod:`preprocessing`, :mod:`models`, :mod:`training`,
:mod:`prediction`, :mod:`restoration`, :mod:`segmentation`, :mod:`metrics`,
:mod:`validation`, :mod:`reporting`, :mod:`viz`, :mod:`widgets`, :mod:`exercises`.
"""
__version__ = "0.2.0"

from .runtime import setup_course  # noqa: E402

__all__ = ["__version__", "setup_course"]
