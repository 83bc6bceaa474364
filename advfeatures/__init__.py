"""advfeatures: reproduce three studies of why adversarial examples exist.

The science lives in small modules, one concept each:

- :mod:`advfeatures.h5io`        the one place that reads and writes HDF5 intermediates
- :mod:`advfeatures.data`        dataset sources -> ``data/{dataset}.h5``
- :mod:`advfeatures.models`      architectures with ``features``/``head``/``representation``/probes
- :mod:`advfeatures.attacks`     FGSM, BIM, PGD, CW, APGD/AutoAttack/FAB wrappers, NRF
- :mod:`advfeatures.training`    standard, PGD-AT, TRADES, MART; checkpoints and resume
- :mod:`advfeatures.synthesis`   Ilyas et al. robust / non-robust datasets
- :mod:`advfeatures.bottleneck`  Kim et al. information-bottleneck distillation
- :mod:`advfeatures.mutual_info` Zhang et al. KDE and binning estimators, distortions
- :mod:`advfeatures.reporting`   tables, figures, claims
"""

__version__ = "0.1.0"
