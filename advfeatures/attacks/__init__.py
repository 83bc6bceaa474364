"""Adversarial attacks in [0, 1] pixel space (models in eval mode, seeded randomness).

- :mod:`.pgd`: FGSM, BIM, PGD (Linf, L2), with optional early stopping.
- :mod:`.cw`: Carlini-Wagner L2 with the correct margin ``Z_y - max_{i != y} Z_i``.
- :mod:`.autoattack`: APGD-CE, AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) and FAB
  through pyautoattack, seeded without touching the caller's global RNG state.
- :mod:`.nrf`: the non-robust feature attack of Kim, Lee, Ro 2021 and its ablations.
- :mod:`.suite`: the registry (config ``attacks.suite``) and the evaluation loop.
- :mod:`.evaluate`: batched prediction, the batched attack loop, clean / PGD accuracy, transfer.

The package imports none of its modules: importing ``advfeatures.attacks.pgd`` must not load
CW, NRF or pyautoattack (rule inputs follow the import graph, see ``advfeatures.deps``).
"""
