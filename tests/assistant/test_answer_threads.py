"""One Answerer serves the server's answer threads at once (assistant.answer_stage runs up to
four): an answer's joint n-best state must not leak into another thread's answer."""

from __future__ import annotations

import threading

from asr.nbest import Hypothesis, NBest
from assistant.answer import Answerer
from assistant.linker import LinkResult
from nlu.schema import Entity, NluResult


class StubLinker:
    """Records which linking each answer asked for; finds nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def posteriors(self, nbest):
        return [1.0 / len(nbest.hypotheses)] * len(nbest.hypotheses)

    def link_joint(self, nlus, weights, intent=None):
        self.calls.append(("joint", nlus[0].text))
        return LinkResult(source="joint")

    def link(self, nlu):
        self.calls.append(("spans", nlu.text))
        return LinkResult()

    def closest(self, text, limit=3, min_score=0.0):
        return []


class PausingInventory:
    """Stores lookups; the joint answer's lookup waits until the other answer is done."""

    def __init__(self) -> None:
        self.joint_inside, self.other_done = threading.Event(), threading.Event()

    def store(self, store_id):
        if threading.current_thread().name == "joint":
            self.joint_inside.set()
            assert self.other_done.wait(5)
        return object()

    def stores(self):
        return {"1": object()}


def parse(text: str) -> NluResult:
    return NluResult(text, "en", "find_product", 0.9, (Entity("BRAND", "tide", 0, 4),))


def test_a_concurrent_answer_does_not_void_the_joint_state_of_another():
    linker, inventory = StubLinker(), PausingInventory()
    answerer = Answerer(inventory, linker)
    texts = ["tide pods please", "tied pods please"]
    nbest = NBest(tuple(Hypothesis(t, asr_score=-0.1, score=-0.1) for t in texts), "en")

    def joint():
        answerer.answer(parse(texts[0]), "1", nbest=nbest, nlus=[parse(t) for t in texts])

    worker = threading.Thread(target=joint, name="joint")
    worker.start()
    assert inventory.joint_inside.wait(5)
    answerer.answer(parse("where is the gain"), "1")  # one reading: no joint state
    inventory.other_done.set()
    worker.join(5)
    assert sorted(linker.calls) == [("joint", "tide pods please"), ("spans", "where is the gain")]
