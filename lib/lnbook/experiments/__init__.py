"""The computations behind the claims, one module per section group of a chapter (each names its
``CHAPTER``), and the two modules they share: ``common`` (helpers) and ``toys`` (toy data and models).

Importing this package registers every claim: :data:`CHAPTER_MODULES` is the one list of the modules
that register claims, in book order. :mod:`lnbook.claims` finds this package through the entry point
``lnbook.claims`` (pyproject.toml) and never imports it by name.
"""

from lnbook.experiments import (
    foundations,
    foundations_gradients,
    kernels,
    principles,
    principles_affine,
    principles_stream,
    residual,
    residual_depth,
    residual_landscape,
    residual_practice,
    residual_training,
    transformer,
    transformer_cost,
    transformer_training,
    why,
    why_batchnorm,
    why_models,
)

CHAPTER_MODULES = (
    foundations, foundations_gradients,
    principles, principles_affine, principles_stream,
    transformer, transformer_cost, transformer_training,
    why, why_batchnorm, why_models,
    residual, residual_depth, residual_landscape, residual_practice, residual_training,
    kernels,
)
