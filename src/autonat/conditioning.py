"""Conditioning as data: what a NAT is conditioned on, for a batch of sequences.

A `Condition` is a small immutable batch object that the model contract, the sampler's guidance
pass, training's condition dropout, evaluation and the search all pass around without looking
inside. It knows its own null (the unconditional input of classifier-free guidance) and how to be
sliced and stacked, so the sampler can batch the conditional and unconditional passes and chunk
model calls whatever the condition is:

    len(c)              batch size B
    c.rows(lo, hi)      the conditions of sequences lo:hi
    type(c).cat(parts)  several row blocks stacked in order
    c.null()            the null condition for every row (guidance's unconditional pass)
    c.dropped(drop)     rows where `drop` [B] is True replaced by the null (training dropout)
    c.same_as(other)    identical conditions (caches keyed by the condition use it)
    c.to(device)

Two kinds: `ClassCondition` (class ids, the null id = the number of classes) and `TextCondition`
(text-encoder states with their padding mask, the null = the empty prompt's encoding); a model is
asked for the kind it was trained on and refuses another with a clear error (`expect_condition`).
A `ClassConditioner` turns what a user types (class names, ids, 'null') into a Condition and says
which conditions an evaluation of n samples uses (`for_evaluation`: class-balanced labels in a
seeded order, a pure function of (n, seed) - the basis of common random numbers);
`autonat.text.conditioner` does the same for prompts.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import torch
import torch.nn.functional as F

from .io import AutonatError


@runtime_checkable
class Condition(Protocol):
    """What a model is conditioned on, for B sequences (see module docstring)."""

    def __len__(self) -> int: ...

    def rows(self, lo: int, hi: int) -> "Condition": ...

    @classmethod
    def cat(cls, parts: list["Condition"]) -> "Condition": ...

    def null(self) -> "Condition": ...

    def dropped(self, drop: torch.Tensor) -> "Condition": ...

    def same_as(self, other: "Condition") -> bool: ...

    def to(self, device: torch.device | str) -> "Condition": ...


# ----------------------------------------------------------------------------------------------
# Class ids
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ClassCondition:
    """Class ids [B] in [0, num_classes]; `num_classes` itself is the null (unconditional) id."""
    labels: torch.Tensor
    num_classes: int

    def __post_init__(self):
        if self.labels.ndim != 1 or self.labels.dtype not in (torch.int64, torch.int32):
            raise AutonatError(f"class labels must be a 1-D integer tensor, got {self.labels.dtype} "
                               f"{list(self.labels.shape)}")

    @property
    def null_id(self) -> int:
        return self.num_classes

    def __len__(self) -> int:
        return self.labels.shape[0]

    def rows(self, lo: int, hi: int) -> "ClassCondition":
        return ClassCondition(self.labels[lo:hi], self.num_classes)

    @classmethod
    def cat(cls, parts: list["ClassCondition"]) -> "ClassCondition":
        if len({p.num_classes for p in parts}) != 1:
            raise AutonatError("cannot stack class conditions of models with different class counts")
        return cls(torch.cat([p.labels for p in parts]), parts[0].num_classes)

    def null(self) -> "ClassCondition":
        return ClassCondition(torch.full_like(self.labels, self.null_id), self.num_classes)

    def dropped(self, drop: torch.Tensor) -> "ClassCondition":
        return ClassCondition(torch.where(drop.to(self.labels.device), torch.full_like(self.labels, self.null_id),
                                          self.labels), self.num_classes)

    def same_as(self, other: "Condition") -> bool:
        return (isinstance(other, ClassCondition) and other.num_classes == self.num_classes
                and torch.equal(self.labels, other.labels))

    def to(self, device: torch.device | str) -> "ClassCondition":
        return ClassCondition(self.labels.to(device), self.num_classes)

    def ids(self) -> list[int]:
        return self.labels.tolist()


def expect_condition(cond: Condition, kind: type, what: str) -> None:
    """Refuse a condition of another kind than the model was trained on (e.g. a prompt for a
    class-conditional model), naming both."""
    if not isinstance(cond, kind):
        have = getattr(type(cond), "DESCRIPTION", type(cond).__name__)
        want = getattr(kind, "DESCRIPTION", kind.__name__)
        raise AutonatError(f"{what} is conditioned on {want}, but was given {have}")


ClassCondition.DESCRIPTION = "class labels"


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TextCondition:
    """Text-encoder states [B, L, D] with their padding mask [B, L] (True = a real token); the
    null (unconditional) condition is the encoding of the empty prompt, `null_states` [L, D] and
    `null_mask` [L], as U-ViT and Muse do it. `prompts` keeps the B prompts for traces and
    captions (None for a null or dropped row); it plays no part in the model's computation.
    `pooled_emb` [B, P] (and `null_pooled_emb` [P]): the encoder's pooled prompt embedding, for
    models that take one besides the states (Muse / aMUSEd: CLIP's projected text embedding)."""
    states: torch.Tensor
    mask: torch.Tensor
    null_states: torch.Tensor
    null_mask: torch.Tensor
    prompts: tuple[str | None, ...] = ()
    pooled_emb: torch.Tensor | None = None
    null_pooled_emb: torch.Tensor | None = None

    def __post_init__(self):
        if self.states.ndim != 3 or not self.states.is_floating_point():
            raise AutonatError(f"text states must be a float tensor [B, L, D], got {self.states.dtype} "
                               f"{list(self.states.shape)}")
        if self.mask.dtype != torch.bool or self.mask.shape != self.states.shape[:2]:
            raise AutonatError(f"text padding mask must be bool {list(self.states.shape[:2])}, got "
                               f"{self.mask.dtype} {list(self.mask.shape)}")
        if self.null_states.shape != self.states.shape[1:] or self.null_mask.shape != self.states.shape[1:2]:
            raise AutonatError(f"null text condition {list(self.null_states.shape)} does not match states "
                               f"{list(self.states.shape)}")
        if (self.pooled_emb is None) != (self.null_pooled_emb is None) or (
                self.pooled_emb is not None and (self.pooled_emb.ndim != 2 or len(self.pooled_emb) != len(self)
                                                 or self.null_pooled_emb.shape != self.pooled_emb.shape[1:])):
            raise AutonatError("a pooled text embedding needs one row per condition and a null of the same width")
        if not self.prompts:
            object.__setattr__(self, "prompts", (None,) * len(self))
        elif len(self.prompts) != len(self):
            raise AutonatError(f"{len(self.prompts)} prompts for {len(self)} text conditions")

    def __len__(self) -> int:
        return self.states.shape[0]

    @property
    def length(self) -> int:
        """L, the number of context tokens."""
        return self.states.shape[1]

    @property
    def dim(self) -> int:
        """D, the width of the text encoder's states."""
        return self.states.shape[2]

    def pooled(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(states [B, ceil(L/k), D], mask [B, ceil(L/k)]): the masked mean of each window of k
        consecutive tokens (padding excluded; a window of padding only stays padding). A
        byte-level encoder's long sequences become k times fewer context tokens for the NAT."""
        if k == 1:
            return self.states, self.mask
        b, n, d = self.states.shape
        pad = -n % k
        m = F.pad(self.mask, (0, pad)).view(b, -1, k)
        x = F.pad(self.states, (0, 0, 0, pad)).view(b, -1, k, d)
        w = m.to(x.dtype).unsqueeze(-1)
        return (x * w).sum(2) / w.sum(2).clamp(min=1), m.any(2)

    def _like(self, states, mask, prompts, pooled=None) -> "TextCondition":
        return TextCondition(states, mask, self.null_states, self.null_mask, tuple(prompts), pooled,
                             self.null_pooled_emb)

    def rows(self, lo: int, hi: int) -> "TextCondition":
        pooled = None if self.pooled_emb is None else self.pooled_emb[lo:hi]
        return self._like(self.states[lo:hi], self.mask[lo:hi], self.prompts[lo:hi], pooled)

    @classmethod
    def cat(cls, parts: list["TextCondition"]) -> "TextCondition":
        first = parts[0]
        if any(p.states.shape[1:] != first.states.shape[1:] or not torch.equal(p.null_states, first.null_states)
               for p in parts[1:]):
            raise AutonatError("cannot stack text conditions of different text encoders")
        pooled = None if first.pooled_emb is None else torch.cat([p.pooled_emb for p in parts])
        return first._like(torch.cat([p.states for p in parts]), torch.cat([p.mask for p in parts]),
                           sum((p.prompts for p in parts), ()), pooled)

    def null(self) -> "TextCondition":
        b = len(self)
        pooled = None if self.pooled_emb is None else self.null_pooled_emb.expand(b, -1).clone()
        return self._like(self.null_states.expand(b, -1, -1).clone(), self.null_mask.expand(b, -1).clone(),
                          (None,) * b, pooled)

    def dropped(self, drop: torch.Tensor) -> "TextCondition":
        d = drop.to(self.states.device)
        states = torch.where(d[:, None, None], self.null_states.to(self.states.dtype), self.states)
        mask = torch.where(d[:, None], self.null_mask, self.mask)
        pooled = None if self.pooled_emb is None else \
            torch.where(d[:, None], self.null_pooled_emb.to(self.pooled_emb.dtype), self.pooled_emb)
        return self._like(states, mask, (None if x else p for p, x in zip(self.prompts, d.tolist())), pooled)

    def same_as(self, other: "Condition") -> bool:
        return (isinstance(other, TextCondition) and other.states.shape == self.states.shape
                and torch.equal(self.states, other.states) and torch.equal(self.mask, other.mask)
                and (self.pooled_emb is None) == (other.pooled_emb is None)
                and (self.pooled_emb is None or torch.equal(self.pooled_emb, other.pooled_emb)))

    def to(self, device: torch.device | str) -> "TextCondition":
        def move(x):
            return None if x is None else x.to(device)
        return TextCondition(self.states.to(device), self.mask.to(device), self.null_states.to(device),
                             self.null_mask.to(device), self.prompts, move(self.pooled_emb),
                             move(self.null_pooled_emb))


TextCondition.DESCRIPTION = "text prompts"


# ----------------------------------------------------------------------------------------------
# From what users type
# ----------------------------------------------------------------------------------------------

_NULL_WORDS = ("null", "none", "uncond")


def _class_id(item, lower: list[str], num_classes: int, class_names: Sequence[str]) -> int | None:
    """The id of one class spec (an int, a decimal string, a name, or 'null'); None = empty."""
    if isinstance(item, bool):
        raise AutonatError(f"unknown class {item!r}; classes: {', '.join(class_names) or num_classes}")
    if isinstance(item, int):
        k = item
    elif isinstance(item, str):
        tok = unicodedata.normalize("NFC", item.strip())
        if tok == "":
            return None
        if tok.lower() in _NULL_WORDS:
            return num_classes
        if tok.lower() in lower:
            return lower.index(tok.lower())
        digits = tok[1:] if tok[:1] == "-" else tok
        # ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits,
        # which int() then rejects or reads differently.
        if not (digits.isascii() and digits.isdigit()):
            raise AutonatError(f"unknown class {tok!r}; classes: {', '.join(class_names) or num_classes} "
                               f"(or ids 0..{num_classes - 1}, 'null' = unconditional)")
        k = int(tok)
    else:
        raise AutonatError(f"unknown class {item!r}; give class ids or names")
    if not 0 <= k <= num_classes:
        raise AutonatError(f"class id {k} out of range [0, {num_classes}] ({num_classes} = unconditional)")
    return k


@dataclass(frozen=True)
class ClassConditioner:
    """Class conditioning of a model with `num_classes` classes (names optional)."""
    num_classes: int
    class_names: tuple[str, ...] = ()

    kind = ClassCondition

    def __post_init__(self):
        names = tuple(self.class_names) or tuple(str(i) for i in range(self.num_classes))
        object.__setattr__(self, "class_names", names)

    def parse(self, spec: Sequence[int | str] | str | torch.Tensor | None, n: int | None = None) -> list[int]:
        """Class ids from ids, names (case-insensitive) or 'null' (unconditional), e.g.
        "Coat,3,null"; `n` repeats them round-robin to n entries (None: as given; no spec:
        every class)."""
        if spec is None:
            chosen = list(range(self.num_classes))
        else:
            items = spec.split(",") if isinstance(spec, str) else spec.tolist() if torch.is_tensor(spec) \
                else list(spec)
            lower = [c.lower() for c in self.class_names]
            chosen = [k for k in (_class_id(i, lower, self.num_classes, self.class_names) for i in items)
                      if k is not None]
            if not chosen:
                raise AutonatError("no classes given")
        return chosen if n is None else [chosen[i % len(chosen)] for i in range(n)]

    def condition(self, ids: Sequence[int] | torch.Tensor) -> ClassCondition:
        return ClassCondition(torch.as_tensor(ids, dtype=torch.long), self.num_classes)

    def for_evaluation(self, n: int, seed: int) -> ClassCondition:
        """n labels with every class n // C or n // C + 1 times, in a seeded random order: label
        i depends only on (n, seed, i)."""
        labels = torch.arange(n) % self.num_classes
        return self.condition(labels[torch.randperm(n, generator=torch.Generator().manual_seed(seed))])

    def name(self, k: int) -> str:
        return self.class_names[k] if 0 <= k < len(self.class_names) else "uncond"
