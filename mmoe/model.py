# TEMPORARY during the move to layers; removed before the layers work lands
from mmoe.nn.model import *  # noqa: F401,F403
from mmoe.nn.model import model_meta  # noqa: F401
