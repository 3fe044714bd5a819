"""Toy data and toy models that more than one chapter trains or probes.

Nothing here registers a claim; the chapters' modules import it, so that a seed changed here moves
every claim that depends on it, visibly, and no chapter's module imports another chapter's.

* :func:`teacher_data`: a 4-class problem labelled by a noisy random teacher (chapters 1 and 4).
* :func:`landscape`: full-batch SGD of a ReLU MLP, probed along the gradient (F11, W02).
* :func:`padded_batch`: two sequences of very different lengths, zero-padded (F06, W03).
* the Markov chain (:func:`markov_probs`, :func:`markov_batch`, :func:`markov_entropy`) and
  :class:`TinyLM`, a small causal language model (chapter 5's training experiments).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from lnbook.experiments.common import F64, one_thread, randn, seeded_start
from lnbook.models import CausalSelfAttention, PlainBlock, TransformerBlock, relu_mlp

# ----------------------------------------------------------------------------- a teacher problem


def teacher_data(n: int = 256, d_in: int = 32, d_out: int = 4, seed: int = 20):
    """A 4-class problem labelled by a noisy random teacher: (x (n, d_in), y (n,))."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen, dtype=F64)
    teacher = torch.randn(d_in, d_out, generator=gen, dtype=F64)
    y = (torch.tanh(x @ teacher) + 0.3 * torch.randn(n, d_out, generator=gen, dtype=F64)).argmax(1)
    return x, y


def _loss_and_grad(model, x, y, params: torch.Tensor):
    torch.nn.utils.vector_to_parameters(params, model.parameters())
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return float(loss.detach()), torch.cat([g.flatten() for g in grads])


@functools.cache
def landscape(depth: int, lr: float, use_ln: bool, seed: int = 0, steps: int = 100, probes: int = 6,
              multiples=(0.25, 0.5, 1, 2, 4)):
    """Train with full-batch SGD; at ``probes`` points look along the gradient g (Santurkar et al. 2018).

    The network is :func:`lnbook.models.relu_mlp` of width 32 on :func:`teacher_data`, with
    LayerNorm before each ReLU if ``use_ln``. For step sizes η = lr·m (m in ``multiples``) it records
    the loss L(w − ηg) and the gradient change ‖∇L(w − ηg) − ∇L(w)‖ / ‖ηg‖ (an estimate of the local
    smoothness β). Returns one dict per probe.

    It runs on one thread whoever calls it: the result is cached, and a thread pool splits the float64 sums
    differently, so a caller on two threads (a figure) would leave a run that differs in its last digits
    from the one a claim on one thread computes (tests/test_foundations.py).
    """
    model, (x, y) = seeded_start(relu_mlp(depth, 32, "layer" if use_ln else "none", seed=seed)), teacher_data()
    w = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    out = []
    with one_thread():
        for step in range(steps + 1):
            loss, g = _loss_and_grad(model, x, y, w)
            if step % (steps // (probes - 1)) == 0:
                out.append(_probe(model, x, y, w, lr, multiples, step, loss, g))
            w = w - lr * g
    return out


def probe_summary(probes: list[dict]) -> dict[str, float]:
    """One :func:`landscape` run summed up: the mean loss range along the gradient, the largest β, the
    first and the last loss (chapter 1's F11 and chapter 4's W02 compare these with and without LN)."""
    return {"loss_range": sum(p["loss_max"] - p["loss_min"] for p in probes) / len(probes),
            "beta": max(p["beta"] for p in probes), "first": probes[0]["loss"], "last": probes[-1]["loss"]}


def _probe(model, x, y, w, lr, multiples, step, loss, g) -> dict:
    """The loss range and the largest gradient change per unit step along −g from w."""
    along = [_loss_and_grad(model, x, y, w - lr * m * g) for m in multiples]
    return {"step": step, "loss": loss, "loss_min": min(a[0] for a in along), "loss_max": max(a[0] for a in along),
            "beta": max(float((a[1] - g).norm() / (lr * m * g.norm())) for a, m in zip(along, multiples))}


LANDSCAPE_RUN = {"depth": 12, "lr": 0.1}  # deep enough, and a step large enough, for the plain net to struggle


# ----------------------------------------------------------------------------- padded sequences


def padded_batch(lengths=(100, 5), h: int = 16, feature_mean: float = 2.0, seed: int = 8):
    """Sequences of the given lengths, zero-padded to the longest: returns (x, mask) of shapes (B, T, H), (B, T)."""
    t = max(lengths)
    x = randn(len(lengths), t, h, seed=seed) + feature_mean
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return x * mask[..., None], mask


# ----------------------------------------------------------------------------- a Markov-chain language

MARKOV = {"depth": 6, "vocab": 16, "tokens": 16, "batch": 16, "steps": 150, "lr": 3e-3, "seed": 99}


def markov_probs() -> torch.Tensor:
    """The transition matrix of a fixed random first-order Markov chain (seeded): (vocab, vocab), rows sum to 1."""
    V = MARKOV["vocab"]
    return torch.softmax(3 * torch.randn(V, V, generator=torch.Generator().manual_seed(MARKOV["seed"]), dtype=F64), -1)


def markov_batch(gen: torch.Generator, n: int) -> torch.Tensor:
    """Token sequences from the chain of :func:`markov_probs`: (n, tokens + 1)."""
    probs = markov_probs().float()
    seq = [torch.randint(MARKOV["vocab"], (n,), generator=gen)]
    for _ in range(MARKOV["tokens"]):
        seq.append(torch.multinomial(probs[seq[-1]], 1, generator=gen).squeeze(1))
    return torch.stack(seq, 1)


def markov_entropy() -> float:
    """The chain's entropy rate under its stationary distribution: the best achievable loss."""
    probs = markov_probs()
    pi = torch.linalg.matrix_power(probs, 200)[0]  # rows converge to the stationary distribution
    # The first token is uniform, not stationary: close enough after a few steps of a 16-token sequence.
    return float(-(pi[:, None] * probs * probs.log()).sum())


# ----------------------------------------------------------------------------- a tiny language model


class TinyLM(nn.Module):
    """Embedding, a stack of Transformer layers (Post-LN, Pre-LN with a final LN, or plain), a linear head."""

    def __init__(self, kind: str, vocab: int, positions: int, depth: int, d: int = 32, heads: int = 4):
        super().__init__()
        self.emb, self.pos = nn.Embedding(vocab, d), nn.Parameter(torch.zeros(positions, d))
        if kind == "plain":  # no skip connections and no norms
            self.layers = nn.Sequential(*[nn.Sequential(PlainBlock(d, norm="none", sublayer=CausalSelfAttention(d, heads)),
                                                        PlainBlock(d, norm="none")) for _ in range(depth)])
        else:
            self.layers = nn.Sequential(*[TransformerBlock(d, heads, kind) for _ in range(depth)])
        self.final = nn.LayerNorm(d) if kind == "pre" else nn.Identity()
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens):
        return self.head(self.final(self.layers(self.emb(tokens) + self.pos[: tokens.shape[1]])))


# The sparse example of seed 001 (chapter 2, M01 and M06): two loud features, six silent.
SPARSE = (5.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # the source's example: two loud features, six silent


def sparse_example(scale: float = 1.0) -> torch.Tensor:
    return torch.tensor(SPARSE, dtype=F64) * scale  # (8,)
