# TEMPORARY during the move to layers; removed before the layers work lands
import sys as _sys

import mmoe.runs.jobs as _m

_sys.modules[__name__] = _m
