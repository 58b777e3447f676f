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
