import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ASR_SHARED_DATA", REPO.parent / "shared" / "data"))
LIBRISPEECH = SHARED / "LibriSpeech"
FSDD = SHARED / "fsdd"
TEST_DATA = Path(__file__).parent / "data"

torch.set_num_threads(1)


def need(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"needs {path} (the shared data of the dev machines and CI)")


needs_fsdd = need(FSDD / "recordings")
needs_librispeech = need(LIBRISPEECH / "train-clean-5")


@pytest.fixture(scope="session")
def deaf_model(tmp_path_factory):
    """The shipped model with heads that hear nothing (blank at every frame): an empty transcript
    says that this model, not the bundle's own, heard the audio."""
    import numpy as np

    from asr.bundle import default_bundle_path
    from asr.rnn import RNNModel

    m = RNNModel.load(default_bundle_path() / "model.npz")
    w = dict(m.w)
    for head in ("char_head", "phone_head"):
        w[f"{head}.weight"] = np.zeros_like(w[f"{head}.weight"])
        w[f"{head}.bias"] = np.eye(len(w[f"{head}.bias"]), dtype=np.float32)[0] * 30  # index 0: blank
    path = tmp_path_factory.mktemp("deaf") / "deaf.npz"
    RNNModel(m.config, w).save(path)
    return str(path)
