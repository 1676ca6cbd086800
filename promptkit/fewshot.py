"""The old path of :mod:`promptkit.builders.fewshot`; it warns and goes away next release."""

import warnings

from .builders.fewshot import DEFAULT_EXAMPLE_FORMAT as DEFAULT_EXAMPLE_FORMAT
from .builders.fewshot import Example as Example
from .builders.fewshot import FewShot as FewShot
from .builders.fewshot import SelectName as SelectName
from .builders.fewshot import few_shot as few_shot
from .builders.fewshot import load_pool as load_pool
from .errors import PromptkitDeprecationWarning

__all__ = ["DEFAULT_EXAMPLE_FORMAT", "Example", "FewShot", "SelectName", "few_shot", "load_pool"]

# stacklevel 2 names the importing line (the import machinery's frames are skipped).
warnings.warn("promptkit.fewshot is now promptkit.builders.fewshot; the old path goes away "
              "in the next release", PromptkitDeprecationWarning, stacklevel=2)
