"""Run where lmms-eval is importable (by test_lmms_eval.py): lmms-eval's own TaskManager
finds the exported tasks under `--include_path`, builds them (its ConfigurableTask loads
the build folder's test split) and scores replies with the tasks' process_results and
aggregations. Usage: python check_lmms_eval.py TASK_FOLDER REPLIES_JSON; prints one JSON
line: task -> {"docs", "visual", "text", "metrics"}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str, replies_file: str) -> None:
    from lmms_eval.tasks import TaskManager, get_task_dict

    replies = json.loads(Path(replies_file).read_text())  # mode -> doc id -> reply
    manager = TaskManager(include_path=folder)
    names = sorted(n for n in manager.all_tasks if n.startswith("autodrive_"))
    report = {}
    for name, task in get_task_dict(names, manager).items():
        mode = name.rsplit("_", 1)[1]
        docs = list(task.test_docs())
        scored = [task.process_results(d, [replies[mode][d["id"]]]) for d in docs]
        aggregate = task.aggregation()
        report[name] = {
            "docs": [d["id"] for d in docs],
            "visual": task.doc_to_visual(docs[0]),
            "text": task.doc_to_text(docs[0]),
            "metrics": {k: aggregate[k]([s[k] for s in scored]) for k in scored[0]},
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
