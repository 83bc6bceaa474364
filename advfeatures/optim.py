"""Adam for the short inner optimisations (IB noise, C&W) without ``torch.optim.Optimizer``.

The first call of any ``torch.optim.Optimizer`` method imports ``torch._dynamo`` (its methods are
wrapped by ``torch._disable_dynamo``), about 1.3 s on the 2-core CPU machine: more than the
compute of a typical distill or NRF job.  :class:`Adam` keeps torch's own state layout and calls
torch's functional update ``torch.optim.adam.adam`` with the same arguments ``torch.optim.Adam``
passes, so its iterates are bit-identical to ``torch.optim.Adam`` (tested); only the import goes.
Training keeps ``torch.optim`` (schedulers, resumable state), where 1.3 s is lost in minutes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.adam import adam


class Adam:
    """``torch.optim.Adam(params, lr, betas, eps)`` without weight decay or AMSGrad."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.params = list(params)
        if not all(p.requires_grad for p in self.params):
            raise ValueError("Adam: every parameter must require grad")
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # torch.optim.Adam's step counters: float32 scalars on the CPU (capturable=False)
        self.steps = [torch.tensor(0.0, dtype=torch.float32) for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        adam(
            [self.params[i] for i in live],
            [self.params[i].grad for i in live],
            [self.exp_avgs[i] for i in live],
            [self.exp_avg_sqs[i] for i in live],
            [],
            [self.steps[i] for i in live],
            foreach=None,  # torch.optim.Adam's default choice (foreach on CUDA, per tensor on CPU)
            capturable=False,
            differentiable=False,
            fused=None,
            grad_scale=None,
            found_inf=None,
            has_complex=any(torch.is_complex(self.params[i]) for i in live),
            amsgrad=False,
            beta1=self.betas[0],
            beta2=self.betas[1],
            lr=self.lr,
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
        )
