"""Run where LLaMA-Factory 0.9.5 imports (by test_llamafactory.py): its own dataset_info
parser, DataArguments and sharegpt converter read the exported folder. The packages
`llamafactory.data` and `llamafactory.hparams` are registered without running their
`__init__` (which imports the collators, hence torchaudio); the modules used are run as
they are. Usage: python check_llamafactory.py DATASET_DIR NAME; prints one JSON line: the
converted rows (`_prompt`, `_response`, `_system`, `_videos`) and the media_dir.
"""

from __future__ import annotations

import importlib.util
import json
import sys


def main(dataset_dir: str, name: str) -> None:
    for package in ("llamafactory.data", "llamafactory.hparams"):
        spec = importlib.util.find_spec(package)
        sys.modules[package] = importlib.util.module_from_spec(spec)
    import datasets
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams.data_args import DataArguments

    (attr,) = get_dataset_list([name], dataset_dir)
    args = DataArguments(dataset=name, dataset_dir=dataset_dir)
    converter = get_dataset_converter(attr.formatting, attr, args)
    # as data/loader.py loads a `file_name` dataset
    rows = datasets.load_dataset("json", data_files=[f"{dataset_dir}/{attr.dataset_name}"],
                                 split=attr.split)  # fmt: skip
    print(json.dumps({"media_dir": args.media_dir, "rows": [converter(r) for r in rows]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
