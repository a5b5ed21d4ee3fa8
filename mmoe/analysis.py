# TEMPORARY during the move to layers; removed before the layers work lands
from mmoe.views import *  # noqa: F401,F403
