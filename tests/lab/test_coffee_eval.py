"""lab.eval.coffee: slot normalization, command acceptance, mixing at the benchmark's SNR, the
synthetic noise, and a whole run over three synthetic clips with a fake understanding (no
Whisper, no real-speech folder)."""

import json

import numpy as np
import pytest
import soundfile as sf

from lab.eval import coffee

ORDER = {"intent": "orderDrink", "slots": {"coffeeDrink": "latte", "milkAmount": " soy milk"}}


def test_normalize_slot_strips_lowers_and_collapses_spaces():
    assert coffee.normalize_slot(" Soy   Milk ") == "soy milk"
    assert coffee.normalize_slot("\tlatte\n") == "latte"


def test_accepted_needs_the_intent_and_exactly_the_slots():
    assert coffee.accepted(ORDER, "orderDrink", {"coffeeDrink": "Latte", "milkAmount": "soy milk"})
    # label spelling styles are one name
    assert coffee.accepted(
        ORDER, "order_drink", {"COFFEE_DRINK": "latte", "milk_amount": "soy milk"}
    )
    assert not coffee.accepted(ORDER, None, {"coffeeDrink": "latte", "milkAmount": "soy milk"})
    assert not coffee.accepted(ORDER, "cancel", {"coffeeDrink": "latte", "milkAmount": "soy milk"})
    assert not coffee.accepted(ORDER, "orderDrink", {"coffeeDrink": "latte"})  # one missing
    assert not coffee.accepted(
        ORDER, "orderDrink", {"coffeeDrink": "mocha", "milkAmount": "soy milk"}
    )
    extra = {"coffeeDrink": "latte", "milkAmount": "soy milk", "size": "large"}
    assert not coffee.accepted(ORDER, "orderDrink", extra)


def test_words_heard_are_whole_words_in_order():
    assert coffee.words_heard(" soy milk", "Can I get a latte with soy milk?")
    assert coffee.words_heard("eight ounce", "an 8 ounce mocha")  # digits spelled out
    assert not coffee.words_heard("soy milk", "milk and soy")
    assert not coffee.words_heard("latte", "lattes please")


def _measured_snr(mix, speech, segment):
    """SNR of the mix by max frame energy: its speech and noise parts by least squares."""
    (a, b), *_ = np.linalg.lstsq(np.stack([speech, segment], 1), mix.astype(np.float64), rcond=None)
    return 10 * np.log10(coffee.max_frame_energy(a * speech) / coffee.max_frame_energy(b * segment))


@pytest.mark.parametrize("snr_db", [24.0, 15.0, 6.0, 0.0])
@pytest.mark.parametrize("noise_s", [0.7, 5.0])  # looped, and cropped at an offset
def test_mix_at_snr_reaches_the_target_by_max_frame_energy_at_peak_half(snr_db, noise_s):
    rng = np.random.default_rng(1)
    n = 2 * 16000
    envelope = np.where(np.arange(n) % 8000 < 5000, 1.0, 0.05)  # words and pauses
    speech = (0.3 * rng.standard_normal(n) * envelope).astype(np.float32)
    noise = rng.standard_normal(int(noise_s * 16000)).astype(np.float32)
    mix = coffee.mix_at_snr(speech, noise, snr_db, np.random.default_rng(7))
    segment = coffee.noise_segment(noise.astype(np.float64), n, np.random.default_rng(7))
    assert mix.dtype == np.float32 and mix.shape == speech.shape
    assert np.max(np.abs(mix)) == pytest.approx(0.5, abs=1e-6)
    assert _measured_snr(mix, speech.astype(np.float64), segment) == pytest.approx(snr_db, abs=0.1)


def test_max_frame_energy_takes_the_loudest_whole_frame():
    x = np.zeros(3 * 2048 + 100)
    x[2048:4096] = 0.5
    x[-100:] = 10.0  # not a whole frame: left out
    assert coffee.max_frame_energy(x) == pytest.approx(2048 * 0.25)
    assert coffee.max_frame_energy(np.full(100, 2.0)) == pytest.approx(400.0)  # under one frame


@pytest.mark.parametrize("kind", coffee.KINDS)
def test_make_noise_is_deterministic_and_at_peak_half(kind):
    a = coffee.make_noise(kind, 2.0, 16000, seed=3)
    assert a.shape == (32000,) and a.dtype == np.float32
    assert np.max(np.abs(a)) == pytest.approx(0.5, abs=1e-6)
    assert np.array_equal(a, coffee.make_noise(kind, 2.0, 16000, seed=3))
    assert not np.array_equal(a, coffee.make_noise(kind, 2.0, 16000, seed=4))
    assert coffee.make_noise(kind, 1.0, 8000, seed=3).shape == (8000,)
    with pytest.raises(ValueError):
        coffee.make_noise("street", 1.0)


def test_babble_leaves_out_fixtures_with_a_coffee_slot_word():
    bank = coffee.babble_bank()
    lines = (coffee.FIXTURES / "fixtures.jsonl").read_text(encoding="utf-8").splitlines()
    assert 6 <= len(bank) < len(lines)  # "whole milk", "twelve pack" and so on are out


LABELS = {
    "a.wav": {"intent": "orderDrink", "slots": {"coffeeDrink": "latte"}},
    "b.wav": {"intent": "orderDrink", "slots": {"coffeeDrink": " Latte "}},
    "c.wav": {"intent": "orderDrink", "slots": {"coffeeDrink": "latte", "size": "large"}},
}


def fake_understand(audio):
    assert audio.dtype == np.float32 and audio.ndim == 1
    return "orderDrink", {"coffeeDrink": "latte"}, "one latte please"


def test_a_run_over_three_clips_writes_json_and_markdown(tmp_path):
    data = tmp_path / "bench"
    (data / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in LABELS:
        sf.write(data / "audio" / name, 0.2 * rng.standard_normal(16000), 16000, subtype="PCM_16")
    (data / "labels.json").write_text(json.dumps(LABELS))
    out = tmp_path / "report" / "coffee"
    argv = ["--data", str(data), "--snrs", "12", "6", "--noise-seconds", "2", "--out", str(out)]
    assert coffee.main(argv, understand=fake_understand) == 0

    report = json.loads(out.with_suffix(".json").read_text())
    assert list(report["conditions"]) == [
        "clean", "cafe 12 dB", "cafe 6 dB", "kitchen 12 dB", "kitchen 6 dB",
    ]  # fmt: skip
    for c in report["conditions"].values():
        assert (c["n"], c["accepted"], c["rate"]) == (3, 2, 0.6667)
        assert c["slot_words_heard"] == 0.75  # "large" never said
        assert c["per_slot"]["size"] == {"n": 1, "right": 0, "accuracy": 0.0}
    assert report["summary"]["cafe"] == report["summary"]["noisy_average"] == 0.6667
    text = out.with_suffix(".md").read_text()
    assert "Picovoice Rhino" in text and "97.6%" in text and "66.7%" in text
    assert "python -m lab.eval.coffee --data" in text

    # clean only, and --render rewrites the Markdown from the JSON
    assert coffee.main([*argv[:2], "--snrs", "--out", str(out)], understand=fake_understand) == 0
    assert list(json.loads(out.with_suffix(".json").read_text())["conditions"]) == ["clean"]
    out.with_suffix(".md").unlink()
    assert coffee.main(["--render", "--out", str(out)]) == 0
    assert "clean only" in out.with_suffix(".md").read_text()


def test_a_missing_benchmark_folder_says_so(tmp_path):
    with pytest.raises(SystemExit, match="no benchmark at"):
        coffee.main(["--data", str(tmp_path / "nowhere")], understand=fake_understand)


def test_pipeline_readings_take_the_first_mention_of_each_label():
    from types import SimpleNamespace as NS

    from nlu.schema import Entity

    entities = (
        Entity("coffeeDrink", "latte", 2, 7),
        Entity("coffeeDrink", "mocha", 13, 18),
        Entity("size", "8 oz", 0, 0, value="eight ounce"),  # the pack's canonical value wins
    )
    result = NS(nbest=NS(text="a latte no a mocha"), nlu=NS(intent="orderDrink", entities=entities))
    assert coffee.reading(result) == (
        "orderDrink",
        {"coffeeDrink": "latte", "size": "eight ounce"},
        "a latte no a mocha",
    )
    assert coffee.reading(NS(nbest=NS(text=""), nlu=None)) == (None, {}, "")


def test_the_real_benchmark_loads_when_present():
    if not (coffee.DATA / "labels.json").is_file():
        pytest.skip(f"no benchmark folder at {coffee.DATA}")
    clips = coffee.load_clips(coffee.DATA, limit=2)
    assert len(clips) == 2 and clips[0].audio.dtype == np.float32
    assert clips[0].expected["intent"] == "orderDrink"
