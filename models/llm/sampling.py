"""Choosing each reply's next token, for every reply in a batch at once.

Each reply keeps its own settings and random generator (`Sampler`), so a reply's tokens for a
given seed do not depend on which other replies share its forward pass. The arithmetic is the
same as transformers' processors in the same order (repetition penalty, temperature, top-p),
but top-p looks at the highest `TOP_K_FIRST` probabilities first instead of sorting the whole
vocabulary: a full sort of SmolLM2's 49,152 logits cost 4-7 ms per reply per step on this CPU,
more than a batch's forward pass shares per reply at 16 replies.
"""

from __future__ import annotations

import secrets

import torch

from models.llm.backend import GenerationParams

# Candidates looked at before a full sort is needed: top-p at 0.9 almost always stops well
# inside them; when it does not (a flat distribution), that row falls back to the full sort.
TOP_K_FIRST = 256


class Sampler:
    """One reply's sampling settings, random generator and penalised token ids."""

    __slots__ = ("greedy", "penalised", "penalty", "rng", "temperature", "top_p")

    def __init__(
        self, params: GenerationParams, penalised: list[int], device: torch.device
    ) -> None:
        self.penalty = params.repetition_penalty
        self.temperature = params.temperature
        self.top_p = params.top_p
        self.greedy = params.temperature == 0.0
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        # Ids the repetition penalty looks at: Haven's own words in earlier turns and in this
        # reply. Not the system prompt (that would make the crisis numbers it names less
        # likely), not the person's words (reflecting them back is wanted), not control tokens
        # (a penalised end-of-turn token makes replies run on).
        self.penalised: dict[int, None] = dict.fromkeys(penalised)

    def penalise(self, token_id: int) -> None:
        self.penalised[token_id] = None


@torch.inference_mode()
def sample(scores: torch.Tensor, samplers: list[Sampler]) -> list[int]:
    """The next token of each row of `scores` ([rows, vocab] logits), one sampler per row."""
    # A copy: the penalty writes into it.
    scores = scores.float().clone() if scores.dtype == torch.float32 else scores.float()
    for row, sampler in enumerate(samplers):
        if sampler.penalty != 1.0 and sampler.penalised:
            _penalise(scores, row, sampler)
    chosen: list[int] = [0] * len(samplers)
    greedy = [row for row, s in enumerate(samplers) if s.greedy]
    if greedy:
        picks = scores[greedy].argmax(dim=-1).tolist()
        for row, token in zip(greedy, picks, strict=True):
            chosen[row] = int(token)
    sampled = [row for row, s in enumerate(samplers) if not s.greedy]
    if sampled:
        for row, token in zip(sampled, _nucleus(scores, sampled, samplers), strict=True):
            chosen[row] = token
    return chosen


def _penalise(scores: torch.Tensor, row: int, sampler: Sampler) -> None:
    ids = torch.tensor(list(sampler.penalised), dtype=torch.long, device=scores.device)
    values = scores[row, ids]
    scores[row, ids] = torch.where(values < 0, values * sampler.penalty, values / sampler.penalty)


def _nucleus(scores: torch.Tensor, rows: list[int], samplers: list[Sampler]) -> list[int]:
    temperatures = torch.tensor(
        [samplers[r].temperature for r in rows], device=scores.device
    ).unsqueeze(1)
    top_ps = torch.tensor([samplers[r].top_p for r in rows], device=scores.device).unsqueeze(1)
    logits = scores[rows] / temperatures
    k = min(TOP_K_FIRST, logits.shape[-1])
    top_logits, top_ids = logits.topk(k, dim=-1)
    probs = torch.exp(top_logits - torch.logsumexp(logits, dim=-1, keepdim=True))
    before = probs.cumsum(dim=-1) - probs
    # A token stays when the probability of the tokens above it is still under top_p (the
    # most likely token always stays), as in transformers' TopPLogitsWarper.
    keep = before < top_ps
    keep[:, 0] = True
    complete = (~keep[:, -1]) | (k == logits.shape[-1])
    weights = torch.where(keep, probs, torch.zeros_like(probs))
    complete_list = complete.tolist()
    out: list[int] = []
    for index, row in enumerate(rows):
        rng = samplers[row].rng
        if complete_list[index]:
            pick = torch.multinomial(weights[index], 1, generator=rng)
            out.append(int(top_ids[index, pick].item()))
        else:
            out.append(_full_nucleus(logits[index], samplers[row].top_p, rng))
    return out


def _full_nucleus(logits: torch.Tensor, top_p: float, rng: torch.Generator) -> int:
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, sorted_ids = probs.sort(descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    weights = torch.where(before < top_p, sorted_probs, torch.zeros_like(sorted_probs))
    weights[0] = sorted_probs[0]
    pick = torch.multinomial(weights, 1, generator=rng)
    return int(sorted_ids[pick].item())
