"""The training tests' data: the tiny frame prepared with all three task kinds."""
import pytest
from training_helpers import TASKS

from mmoe.config import DataConfig
from mmoe.data import prepare


@pytest.fixture
def data(tiny_frame):
    return prepare(tiny_frame, DataConfig(tasks=TASKS, seed=0))
