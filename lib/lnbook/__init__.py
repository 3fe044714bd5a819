"""lnbook: the library behind *LayerNorm, Derived*.

Modules
-------
norms        reference LayerNorm, RMSNorm, BatchNorm, InstanceNorm, GroupNorm from primitives
symbolic     SymPy derivations (Jacobians, invariances, the backward formula)
models       tiny Transformer blocks (Post-LN, Pre-LN)
claims       the claims registry and the ledger (``python -m lnbook.claims``)
experiments  one module per chapter: the computations behind its claims
plots        one figure style for the whole book
"""

__version__ = "0.1.0"
