"""A scripted backend for the revision splits: `reasoning_mcq` always answers wrong, the
reviser answers the ground truth the prompt states (some traces citing it), and the
independent check answers what `check_letter(trace)` says. No model, deterministic."""

from __future__ import annotations

import re

from tests.doubles.scripted import ScriptedBackend

_TRUTH = re.compile(r"the right one is ([A-Z])\.")


class ReviserBackend(ScriptedBackend):
    def __init__(self, wrong="A", leak_every=3, check_letter=None):
        super().__init__(answer_letter=wrong)
        self.leak_every = leak_every
        self.check_letter = check_letter or (lambda trace, truth: truth)
        self.revisions = 0

    def _answer(self, req):
        content = req.messages[-1]["content"]
        user = content if isinstance(content, str) else content[-1]["text"]
        if m := _TRUTH.search(user):
            self.revisions += 1
            truth = m.group(1)
            body = (
                "Since the ground truth is given, " if self.revisions % self.leak_every == 0 else ""
            )
            body += f"the truck and the ego meet; option {truth} fits."
            return f"<think>\n{body}\n</think>\n\n<answer>{truth}</answer>"
        if "Here is a line of reasoning" in user:
            trace = user.split("Here is a line of reasoning about the clip:\n", 1)[1]
            truth = re.search(r"option ([A-Z]) fits", trace).group(1)
            return f"<answer>{self.check_letter(trace, truth)}</answer>"
        return super()._answer(req)
