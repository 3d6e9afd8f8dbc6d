"""pyro_vaes: a Pyro model zoo of structured variational autoencoders."""

__version__ = "0.1.0"

from pyro_vaes.api import Run, fit, load  # noqa: E402
from pyro_vaes.comparison import compare  # noqa: E402
from pyro_vaes.config import FitConfig  # noqa: E402

__all__ = ["FitConfig", "Run", "compare", "fit", "load", "__version__"]
