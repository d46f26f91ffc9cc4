"""Lets PyPI's CUDA-linked torchvision import next to the CPU-only torch of `.venv-vllm`.

PyPI has no CPU build of torchvision. Its CUDA build cannot load its C++ ops against
torch's CPU wheel, and then `torchvision/_meta_registrations.py` fails at import with
`operator torchvision::nms does not exist` (and transformers, which imports torchvision
when it is installed, fails with it). Defining the schemas of the two operators that file
registers unconditionally makes the import work; torchvision's own ops stay unavailable
(they raise torchvision's usual "Couldn't load custom C++ ops" error when called).

`mk/vllm.mk` copies this file into the venv's site-packages with a `.pth` line importing
it. It costs nothing at start-up: it only acts when `torchvision` is first imported, and
does nothing when torchvision's extension loads (a real CPU build).
"""

import contextlib
import importlib.abc
import importlib.util
import sys


class _TorchvisionFix(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)  # act once, then let the normal finders import it
        with contextlib.suppress(Exception):  # never break an import over this fix
            _define_missing_ops()
        return None


def _define_missing_ops():
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import glob
    import os

    import torch

    for loc in spec.submodule_search_locations:
        for lib in glob.glob(os.path.join(loc, "_C*.so")):
            try:
                torch.ops.load_library(lib)
                return  # the extension works: nothing to fix
            except (ImportError, OSError):
                pass
    lib = torch.library.Library("torchvision", "DEF")
    for name in ("nms", "qnms"):
        lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _define_missing_ops.lib = lib  # keep the Library object (and its definitions) alive


if not any(isinstance(f, _TorchvisionFix) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionFix())
