"""-v, -q and --log-file of the `autodrive` command line, for one `main()` call.

In: the parsed arguments (`verbose`, `quiet`, `log_file`). While a `Verbosity` is
entered: a stderr handler on the root logger (warnings; -v: debug; -q: errors only), a
file handler with --log-file (info; -v: debug; records marked `log_file_only` go only
there: the command line, the failure message and exit code, an unexpected error's
traceback; Python warnings go there too; a folder there is an InputError), and with
-q the progress bars of tqdm, huggingface_hub and datasets off through their
environment variables. All of it is undone on exit (tests call main() many times in
one process).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

LOG = logging.getLogger("vlm_autodrive")
# Environment variables -q sets for the libraries' own progress bars (tqdm's default,
# huggingface_hub's and datasets'); restored when main() returns.
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}


class Verbosity:
    """-v, -q and --log-file for the duration of one main() call: logging handlers on the
    `vlm_autodrive` and root loggers, and (with -q) the progress bars' environment."""

    def __init__(self, args) -> None:
        self.verbose = bool(getattr(args, "verbose", False))
        self.quiet = bool(getattr(args, "quiet", False)) and not self.verbose
        self.log_file = getattr(args, "log_file", None)
        self.handlers: list[logging.Handler] = []
        self.saved_env: dict[str, str | None] = {}
        self.saved_level = logging.getLogger().level

    def __enter__(self) -> Verbosity:
        root = logging.getLogger()
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setLevel(
            logging.DEBUG if self.verbose else logging.ERROR if self.quiet else logging.WARNING
        )
        stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        stderr.addFilter(lambda r: not getattr(r, "log_file_only", False))
        self.handlers.append(stderr)
        if self.log_file is not None:
            if Path(self.log_file).expanduser().is_dir():
                from vlm_autodrive.builders.core.errors import InputError

                raise InputError(self.log_file, "is a folder, but --log-file names a file")
            Path(self.log_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
            f = logging.FileHandler(Path(self.log_file).expanduser(), encoding="utf-8")
            f.setLevel(logging.DEBUG if self.verbose else logging.INFO)
            f.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            self.handlers.append(f)
        for h in self.handlers:
            root.addHandler(h)
        root.setLevel(min(h.level for h in self.handlers))
        if self.log_file is not None:  # Python warnings into the log too (not otherwise:
            logging.captureWarnings(True)  # a caller's warnings.catch_warnings keeps them)
        if self.quiet:
            self.saved_env = {k: os.environ.get(k) for k in QUIET_ENV}
            os.environ.update(QUIET_ENV)
            if "huggingface_hub" in sys.modules:  # it read the variable when imported
                from huggingface_hub.utils import disable_progress_bars

                disable_progress_bars()
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        for h in self.handlers:
            root.removeHandler(h)
            h.close()
        root.setLevel(self.saved_level)
        if self.log_file is not None:
            logging.captureWarnings(False)
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self.saved_env and "huggingface_hub" in sys.modules:
            from huggingface_hub.utils import enable_progress_bars

            enable_progress_bars()
