"""The latency lab tools' own logic (no models): span timing and attribution in
lab.bench.final_profile, variant parsing, the sign test and the paired summary in
lab.bench.first_pass_knobs."""

from __future__ import annotations

import time

import pytest

from lab.bench import final_profile, first_pass_knobs


def test_spans_are_exclusive_of_their_wrapped_children():
    class Stage:
        def outer(self):
            time.sleep(0.02)
            return self.inner()

        def inner(self):
            time.sleep(0.03)
            return "done"

    spans, stage = final_profile.Spans(), Stage()
    spans.wrap(stage, "inner", "inner")
    spans.wrap(stage, "outer", "outer")
    spans.wrap(None, "anything", "nothing")  # an absent stage is skipped
    assert stage.outer() == "done"
    got = {name: (end - start, exclusive) for name, _t, start, end, exclusive in spans.spans}
    assert got["outer"][0] >= got["inner"][0] + 0.02
    assert got["outer"][1] == pytest.approx(got["outer"][0] - got["inner"][0], abs=1e-6)
    assert got["inner"][1] == pytest.approx(got["inner"][0], abs=1e-6)


def test_a_final_is_charged_its_own_spans_and_not_a_partials():
    spans = final_profile.Spans()
    spans.spans = [
        ("partial", "p", 9.8, 10.3, 0.05),  # started before the end of speech
        ("asr", "p", 9.85, 10.3, 0.05),  # ... its own first pass
        ("asr", "b", 10.1, 10.5, 0.1),
        ("encode", "b", 10.1, 10.2, 0.1),
        ("generate", "b", 10.2, 10.5, 0.3),
        ("answer", "a", 10.5, 10.52, 0.02),
        ("asr", "b", 20.1, 20.4, 0.3),  # the next final's
    ]
    finals = [
        {"speech_end_wall": 10.0, "arrived": 10.6, "text": "one", "speculative": True,
         "silence_ms": 256.0, "complete": True},
        {"speech_end_wall": 20.0, "arrived": 20.5, "text": "two", "speculative": True,
         "silence_ms": 512.0, "complete": None},
    ]  # fmt: skip
    first, second = final_profile.per_final(finals, spans)
    assert first["start"] == pytest.approx(100.0) and first["asr"] == pytest.approx(400.0)
    assert first["encode"] == pytest.approx(100.0) and first["generate"] == pytest.approx(300.0)
    assert first["done"] == pytest.approx(520.0) and first["final"] == pytest.approx(600.0)
    assert first["held"] == pytest.approx(80.0)
    assert first["partials"] == 1 and first["overlap"] == pytest.approx(200.0)
    assert second["asr"] == pytest.approx(300.0) and second["partials"] == 0


def test_variants_parse_into_decoding_and_streaming_fields():
    from asr.streaming import StreamingConfig
    from asr.transcriber import TranscriberConfig

    fields = set(TranscriberConfig.__dataclass_fields__), set(StreamingConfig.__dataclass_fields__)
    assert first_pass_knobs.parse_variant("base", *fields) == ("base", {}, {})
    assert first_pass_knobs.parse_variant(
        "x:window_s=7,nbest=4,speech_pad_ms=128,widen_beam=false", *fields
    ) == ("x", {"window_s": 7.0, "nbest": 4, "widen_beam": False}, {"speech_pad_ms": 128})
    with pytest.raises(SystemExit, match="neither"):
        first_pass_knobs.parse_variant("x:no_such_field=1", *fields)


def test_sign_test():
    assert first_pass_knobs.sign_test(0, 0) == 1.0
    assert first_pass_knobs.sign_test(5, 5) == 1.0
    assert first_pass_knobs.sign_test(0, 6) == pytest.approx(2 / 64, abs=1e-4)
    assert first_pass_knobs.sign_test(8, 0) == pytest.approx(2 / 256, abs=1e-4)


def test_summary_compares_each_variant_with_base_clip_by_clip():
    def record(variant, clip, text, heard, right, ms):
        return {
            "variant": variant, "clip": clip, "language": "en", "condition": "clean",
            "reference": "where is the tide", "text": text, "utterances": 1, "seconds": 2.0,
            "asr_ms": ms, "entities": {"BRAND": (heard, heard)}, "answer_right": right,
        }  # fmt: skip

    records = [
        record("base", "a", "where is the tide", True, True, 100.0),
        record("base", "b", "where is the tied", False, False, 200.0),
        record("fast", "a", "where is the tied", False, False, 50.0),
        record("fast", "b", "where is the tide", True, True, 100.0),
    ]
    rows = {r["variant"]: r for r in first_pass_knobs.summarize(records, ("variant",))}
    fast = rows["fast"]
    assert (fast["text_changed"], fast["entities_gained"], fast["entities_lost"]) == (2, 1, 1)
    assert (fast["answers_gained"], fast["answers_lost"]) == (1, 1)
    assert fast["ratio_to_base"] == 0.5 and rows["base"]["ratio_to_base"] == 1.0
    assert fast["wer"] == rows["base"]["wer"] == 0.125


def test_a_latency_rerun_keeps_the_hand_written_sections():
    from lab.bench.latency import keep_prose

    old = (
        "# Streaming latency\n\nold tables\n\n<!-- kept -->\n## Profile\n\nprose\n<!-- /kept -->\n"
    )
    page = keep_prose(old, "# Streaming latency\n\nnew tables\n")
    assert page == (
        "# Streaming latency\n\nnew tables\n\n<!-- kept -->\n## Profile\n\nprose\n<!-- /kept -->\n"
    )
    assert keep_prose(page, "# Streaming latency\n\nnewer\n").count("prose") == 1
    assert keep_prose("", "# tables\n") == "# tables\n"


def test_a_call_inside_a_named_parent_takes_the_parents_name():
    class Decoder:
        def draft(self):
            return self.run()

        def run(self):
            time.sleep(0.01)

    spans, decoder = final_profile.Spans(), Decoder()
    spans.wrap(decoder, "run", "generate", under={"draft": "draft"})
    spans.wrap(decoder, "draft", "draft")
    decoder.draft()
    decoder.run()
    assert [name for name, *_ in spans.spans] == ["draft", "draft", "generate"]


def test_the_last_partial_replay_reuses_only_a_partial_that_missed_little_enough():
    import dataclasses

    import numpy as np

    from asr.streaming import Endpoint, StreamingConfig

    class Partials:
        def __init__(self):
            self.lengths = []

        def partial(self, audio, language):
            self.lengths.append(len(audio))
            return ("where are the", "en")

    # 100 VAD windows up to the last speech: partials at ~36, 52, 68, 84 and 100 windows; the
    # one at 100 is not back (230 ms) by the speculation (128 ms), so 84 is the last: ~500 ms.
    end = Endpoint(0, np.zeros(104 * 512, np.float32), "silence", 1.0, 3.2, cut=100)
    config = StreamingConfig()
    fake = Partials()
    for draft_ms, expected in ((-1, None), (250, None), (600, "where are the")):
        config = dataclasses.replace(config, partial_draft_ms=draft_ms)
        assert first_pass_knobs.last_partial(end, config, fake, 230.0) == expected
    (length,) = fake.lengths  # decoded only when reused, up to that partial
    assert 80 * 512 < length < 90 * 512
