"""lnbook: the library behind *LayerNorm, Derived*.

Modules (CONTRIBUTING.md at the repository root is the map: layers, conventions, how to add things)
-------
norms        reference LayerNorm, RMSNorm, BatchNorm, InstanceNorm, GroupNorm from primitives and their
             analytic backward passes: the mathematics only
args         the one argument-checking vocabulary every module uses (messages, single arguments, the
             norms' calls)
symbolic     SymPy derivations (Jacobians, invariances, the backward formula)
variance     naive, two-pass and Welford variance; a GPU-style tree sum; their errors against float64
models       tiny Transformer pieces (Post-LN, Pre-LN, DeepNorm blocks, a ReLU MLP, initializations)
kernels      Triton kernels: layer_norm, rms_norm, add_layer_norm (forward, backward, autograd)
bench        ``python -m lnbook.bench``: GB/s of the kernels against torch eager, torch.compile, Liger
hardware     the one table of device figures (bandwidth, peak rates by precision and unit, L2, SMs)
distributed  LayerNorm with the feature dimension sharded over processes (torch.distributed)
claims       the claims registry, the build's records and the ledger (``python -m lnbook.claims``)
cards        how a result is shown: claim cards, glue, listings, the ledger's table
sources      the five source texts, anchors (seed, heading, verbatim phrase), Chinese verdicts
glossary     the book's terms in English and Chinese, each defined in one sentence, with the chapter that
             first uses it
untested     the seeds' statements the book does not test, with reasons (one module per seed)
readers      the sources page, the Chinese page (中文) and the glossary as Markdown tables
experiments  one module per chapter section group (the computations behind its claims), plus the
             modules the chapters share: ``common`` (helpers) and ``toys`` (toy data and models)
plots        one figure style for the whole book
"""

__version__ = "0.1.0"
