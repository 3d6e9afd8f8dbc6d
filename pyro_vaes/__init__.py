"""pyro_vaes: a Pyro model zoo of structured variational autoencoders."""

__version__ = "0.2.0"

from pyro_vaes import _moved  # noqa: E402

_moved.install()  # 0.1.0's flat import paths (pyro_vaes.evaluation, ...) keep working for one release

from pyro_vaes.analysis.comparison import compare  # noqa: E402
from pyro_vaes.api import Run, fit, load  # noqa: E402
from pyro_vaes.config import FitConfig  # noqa: E402

__all__ = ["FitConfig", "Run", "__version__", "compare", "fit", "load"]
