"""Adversarial attacks in [0, 1] pixel space (models in eval mode, seeded randomness)."""

from advfeatures.attacks.pgd import bim, fgsm, pgd, project, random_start

__all__ = ["bim", "fgsm", "pgd", "project", "random_start"]
