"""A diffusers scheduler that follows an autonat `Strategy`: a diffusers user plugs a searched
strategy into the stock pipeline without leaving diffusers.

    st = autonat.Strategy.load("runs/amused-search/best_strategy.json")
    pipe = AmusedPipeline.from_pretrained(DIR, scheduler=AutonatScheduler.from_strategy(st, mask_token_id=...))
    pipe(prompt, num_inference_steps=st.steps, guidance_scale=pipe.scheduler.guidance_scale, generator=g)
    pipe.save_pretrained(OUT)       # the scheduler's config holds the strategy; from_pretrained restores it

Each `step` does what autonat's sampler does at step t (`autonat.sampling`): tokens drawn at
temperature tau1(t) and scored, the masked count of r(t) (with the strategy's rounding rule),
re-masking by confidence + tau2(t) Gumbel noise (or the Halton order), with the random draws of
`AmusedNoise` (the stock scheduler's), so for the same logits and generator its tokens are the
sampler's. The pipeline applies guidance itself, with one scale: a strategy's s must be constant
and the pipeline's guidance_scale is 1 + s (`guidance_scale`); a strategy whose s varies per step
is refused (search with `--knobs r,tau1,tau2` to keep s fixed).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

from ..io import AutonatError
from ..models.contract import masked_positions
from ..sampling import choose_remask, token_priority
from ..strategy import Strategy
from .noise import AmusedNoise


@dataclass
class AutonatSchedulerOutput(BaseOutput):
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


class AutonatScheduler(SchedulerMixin, ConfigMixin):
    """See module docstring. Config: the mask token id and the strategy's fields."""
    order = 1

    @register_to_config
    def __init__(self, mask_token_id: int, r: list[float] = (), tau1: list[float] = (), tau2: list[float] = (),
                 s: list[float] = (), rounding: str = "floor-float32", token_order: str = "confidence",
                 guidance: str = "muse", name: str = ""):
        st = self.strategy                       # validates (AutonatError -> ValueError for diffusers users)
        if len(set(st.s)) > 1:
            raise ValueError(f"strategy {name!r}: its guidance scale varies per step ({min(st.s):g} .. "
                             f"{max(st.s):g}); a diffusers pipeline applies one guidance scale")
        self.timesteps = None

    @classmethod
    def from_strategy(cls, strategy: Strategy, mask_token_id: int) -> "AutonatScheduler":
        return cls(mask_token_id=int(mask_token_id), r=list(strategy.r), tau1=list(strategy.tau1),
                   tau2=list(strategy.tau2), s=list(strategy.s), rounding=strategy.rounding,
                   token_order=strategy.order, guidance=strategy.guidance, name=strategy.name)

    @property
    def strategy(self) -> Strategy:
        c = self.config
        try:
            return Strategy(r=tuple(c.r), tau1=tuple(c.tau1), tau2=tuple(c.tau2), s=tuple(c.s), rounding=c.rounding,
                            order=c.token_order, guidance=c.guidance, name=c.name)
        except AutonatError as e:
            raise ValueError(str(e)) from None

    @property
    def guidance_scale(self) -> float:
        """The pipeline's guidance_scale for this strategy (1 + s; 1 = no guidance)."""
        return 1.0 + float(self.config.s[0])

    def set_timesteps(self, num_inference_steps: int, temperature=None, device=None) -> None:
        """`temperature` (the stock scheduler's) is ignored: the strategy's tau2 is used."""
        if num_inference_steps != len(self.config.r):
            raise ValueError(f"this scheduler follows a {len(self.config.r)}-step strategy; call the pipeline "
                             f"with num_inference_steps={len(self.config.r)}")
        self.timesteps = torch.arange(num_inference_steps, device=device).flip(0)

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.LongTensor,
             starting_mask_ratio: float = 1.0, generator: torch.Generator | None = None,
             return_dict: bool = True):
        st = self.strategy
        two_dim = sample.ndim == 3 and model_output.ndim == 4
        if two_dim:
            b, k, h, w = model_output.shape
            sample = sample.reshape(b, h * w)
            model_output = model_output.reshape(b, k, h * w).permute(0, 2, 1)
        b, n = sample.shape
        t = int((self.timesteps == timestep).nonzero()[0, 0])
        mask_id = self.config.mask_token_id
        unknown = sample == mask_id
        query = masked_positions(unknown)
        noise = AmusedNoise(generator if generator is not None else torch.Generator().manual_seed(0))
        x, conf = noise.draw_tokens(model_output.gather(1, query.unsqueeze(-1).expand(-1, -1, model_output.shape[-1])),
                                    st.tau1[t], query, n)
        pred = sample.scatter(1, query, x)
        prev = pred
        keep = st.masked_counts(n)[t + 1]
        if keep > 0:
            priority = token_priority(st.order, n)
            if priority is None:
                drop = choose_remask(conf, st.tau2[t], keep, gumbel=noise.gumbel(b, n).gather(1, query))
            else:
                drop = choose_remask(priority.to(query.device)[query], 0.0, keep)
            prev = pred.scatter(1, query.gather(1, drop), mask_id)
        if two_dim:
            prev, pred = prev.reshape(b, h, w), pred.reshape(b, h, w)
        return AutonatSchedulerOutput(prev, pred) if return_dict else (prev, pred)
