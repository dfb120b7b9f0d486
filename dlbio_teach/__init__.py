"""dlbio_teach: the companion package of *Deep learning for bioimage analysis, done right*.

Modules, in the order data flows through them (a module imports only those before it):
:mod:`runtime`, :mod:`data`, :mod:`mirror`, :mod:`preprocessing`, :mod:`synthetic`,
:mod:`metrics`, :mod:`classification`, :mod:`chunked`, :mod:`models`, :mod:`records`,
:mod:`training`, :mod:`prediction`, :mod:`attribution`, :mod:`augment`, :mod:`restoration`,
:mod:`assumptions`, :mod:`star`, :mod:`baseline`,
:mod:`targets`, :mod:`planes`, :mod:`segmentation`, :mod:`tuning`, :mod:`intervals`,
:mod:`conclusions`, :mod:`movies`, :mod:`tracking_links`, :mod:`tracking_scores`,
:mod:`tracking_export`, :mod:`tracking_plots`, :mod:`tracking`, :mod:`annotators`,
:mod:`ensembles`, :mod:`shift`, :mod:`model_card`, :mod:`checklist`, :mod:`zoo`,
:mod:`zoo_import`, :mod:`zoo_files`, :mod:`zoo_checks`, :mod:`zoo_export`;
:mod:`viz`, :mod:`widgets`, :mod:`exercises`, :mod:`readings` and :mod:`lessons` (for the
chapters' check cells and their lessons over seeds) may read from any of them;
:mod:`student_copies` (the learners' copies of the chapters) reads none of them.
"""
__version__ = "0.15.0"

from .runtime import setup_course  # noqa: E402

__all__ = ["__version__", "setup_course"]
