import pytest

from seamline.synth import SynthConfig, SyntheticLine
from seamline.synth.dataset import write_dataset


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory, tiny_models):
    """A small synthetic data set (30 garments, 640x360) for training runs."""
    out = tmp_path_factory.mktemp("synth-small")
    write_dataset(
        SyntheticLine(SynthConfig(width=640, height=360, seed=3, defect_free_share=0.2)),
        30,
        out,
        progress=False,
    )
    return out
