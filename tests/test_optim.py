"""advfeatures.optim.Adam: torch.optim.Adam's iterates without importing torch._dynamo."""

import subprocess
import sys

import torch

from advfeatures.optim import Adam


def _run(opt_cls, steps=25):
    g = torch.Generator().manual_seed(0)
    target = torch.randn(3, 4, generator=g)
    p = torch.zeros(3, 4, requires_grad=True)
    q = torch.ones(5, requires_grad=True)
    opt = opt_cls([p, q], lr=0.1)
    for i in range(steps):
        opt.zero_grad()
        loss = ((p - target) ** 4).sum()
        if i % 3:  # q gets no gradient on every third step, as a parameter outside the graph
            loss = loss + (q.sin() * target[0, 0]).sum()
        loss.backward()
        opt.step()
    return p.detach().clone(), q.detach().clone()


def test_adam_iterates_are_bit_identical_to_torch_optim_adam():
    ours, ref = _run(Adam), _run(torch.optim.Adam)
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
    assert not torch.equal(ours[0], torch.zeros(3, 4))  # it moved


def test_adam_does_not_import_dynamo():
    code = (
        "import sys, torch\n"
        "from advfeatures.optim import Adam\n"
        "p = torch.zeros(2, requires_grad=True); opt = Adam([p], lr=0.1)\n"
        "(p - 1).pow(2).sum().backward(); opt.step(); opt.zero_grad()\n"
        "assert p.grad is None and float(p[0]) > 0\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
