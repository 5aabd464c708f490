"""The schedule model: exact arithmetic on a fixed draw (no servers, no randomness left)."""

from __future__ import annotations

import pytest

from app.voice.fillers import answer_start_s
from simulator.llm_emulator import tokens
from simulator.schedule_model import Model, first_unit, simulate, summary


def test_one_fixed_turn_is_served_as_the_three_arms_say() -> None:
    reply = "We open at nine. See you then!"
    model = Model(ai_min_s=1.0, ai_max_s=1.0, ttft_share=0.6, tts_ttfb_s=0.2, tts_per_char_s=0.004, tts_jitter_s=0.0,
                  upload_s=0.2, rtt_s=0.08, fetch_s=0.12, process_s=0.09, filler_s=0.37, window_s=0.434, cached=0.0)
    times = simulate([reply], model, n=3, seed=1)
    # the first sentence is handed out once a whole word of the second was written: with " you", token 7 of 9
    assert first_unit(reply, True) == ("We open at nine.", 7 / len(tokens(reply)))
    ready = 0.04 + 0.6 + 0.4 * 7 / 9 + 0.2 + 0.004 * len("We open at nine.")  # at the server
    heard = 0.04 + 0.12
    assert times["oracle"] == pytest.approx([ready + heard] * 3)
    assert times["schedule"] == pytest.approx([answer_start_s(ready, 0.09, 0.37, 0.37, 0.434, 0.04) + heard] * 3)
    assert times["control"] == pytest.approx([0.04 + 1.0 + 0.2 + 0.004 * len(reply) + 0.2 + heard] * 3)
    # ready at 1.215 s: "Sure." ends at 0.46, its hop (0.50) waits to 0.934, a bridge plays to 1.304,
    # and the next hop reaches the server at 1.344
    assert times["schedule"][0] == pytest.approx(1.344 + heard)
    assert summary(times)["oracle"]["ratio_p50"] == round((ready + heard) / times["control"][0], 3)


def test_a_cached_first_piece_is_ready_when_its_text_is() -> None:
    model = Model(ai_min_s=1.0, ai_max_s=1.0, tts_jitter_s=0.0, cached=1.0)
    reply = "Yes."
    assert simulate([reply], model, n=1, seed=1)["oracle"] == pytest.approx([1.0 + model.rtt_s + model.fetch_s])


def test_an_interrupt_cuts_a_long_phrase_but_never_a_short_one() -> None:
    from simulator.schedule_model import interrupted_start_s

    # a 1.2 s filler from 0.09 s ends at 1.29; ready at 0.5 with 0.79 s left (> 0.5): cut 0.3 s later, hop 0.04 after
    assert interrupted_start_s(0.5, 0.09, 1.2, 0.37, 0.434, 0.04, 0.3, 0.5) == pytest.approx(0.84)
    assert answer_start_s(0.5, 0.09, 1.2, 0.37, 0.434, 0.04) == pytest.approx(1.33)
    # ready at 0.9: 0.39 s left is within the margin, so the phrase plays out and its own redirect comes
    assert interrupted_start_s(0.9, 0.09, 1.2, 0.37, 0.434, 0.04, 0.3, 0.5) == pytest.approx(1.33)
    # "Sure." (0.37 s) never has more than the margin left: the interrupt arm is the schedule
    for ready in (0.2, 0.4, 0.8, 1.215, 2.0):
        assert interrupted_start_s(ready, 0.09, 0.37, 0.37, 0.434, 0.04, 0.3, 0.5) == pytest.approx(
            answer_start_s(ready, 0.09, 0.37, 0.37, 0.434, 0.04))
    # an interrupt that would land after the phrase's own redirect changes nothing
    assert interrupted_start_s(0.5, 0.09, 1.2, 0.37, 0.434, 0.04, 2.0, 0.5) == pytest.approx(1.33)


def test_the_model_serves_every_draw_four_ways() -> None:
    times = simulate(["Yes, we do."], Model(), n=5, seed=3)
    assert sorted(times) == ["control", "interrupt", "oracle", "schedule"]
    assert all(len(xs) == 5 for xs in times.values())
    assert all(o <= i <= s + 1e-9 for o, i, s in zip(times["oracle"], times["interrupt"], times["schedule"]))
