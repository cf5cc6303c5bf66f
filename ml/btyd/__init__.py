"""Buy-till-you-die models: BG/NBD, MBG/NBD, Pareto/NBD (purchase counts) and Gamma-Gamma (spend).

All models are fitted by maximum likelihood on log-parameters (scipy L-BFGS-B; on large data a
subsample warm start finished by preconditioned BFGS), vectorised, in log space, on identical
rows compressed into weights; see each class for the formulas and :mod:`ml.clv` for the CLV
pipeline helpers. :mod:`ml.btyd.simulate` generates BG/NBD data for benchmarks and tests.
"""

from ml.btyd._base import check_rfm
from ml.btyd.beta_geo import BetaGeoFitter, ModifiedBetaGeoFitter
from ml.btyd.gamma_gamma import GammaGammaFitter
from ml.btyd.pareto import ParetoNBDFitter

__all__ = [
    "BetaGeoFitter",
    "GammaGammaFitter",
    "ModifiedBetaGeoFitter",
    "ParetoNBDFitter",
    "check_rfm",
]
