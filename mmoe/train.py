# TEMPORARY during the move to layers; removed before the layers work lands
from mmoe.training import *  # noqa: F401,F403
from mmoe.training.device import _busy_elsewhere, _running_here  # noqa: F401
