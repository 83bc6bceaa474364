"""Adversarial attacks in [0, 1] pixel space (models in eval mode, seeded randomness).

- :mod:`.pgd`: FGSM, BIM, PGD (Linf, L2), with optional early stopping.
- :mod:`.cw`: Carlini-Wagner L2 with the correct margin ``Z_y - max_{i != y} Z_i``.
- :mod:`.autoattack`: APGD-CE, AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) and FAB
  through pyautoattack, seeded without touching the caller's global RNG state.
- :mod:`.nrf`: the non-robust feature attack of Kim, Lee, Ro 2021 and its ablations.
- :mod:`.suite`: the registry (config ``attacks.suite``) and the evaluation loop.
"""

from advfeatures.attacks.cw import cw_l2, cw_margin
from advfeatures.attacks.nrf import nrf
from advfeatures.attacks.pgd import bim, fgsm, pgd, project, random_start

__all__ = ["bim", "cw_l2", "cw_margin", "fgsm", "nrf", "pgd", "project", "random_start"]
