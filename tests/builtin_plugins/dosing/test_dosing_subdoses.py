"""Splitting doses into sub-doses no larger than max_subdose."""

import pytest

from reactorkit.builtin_plugins.dosing.automation import plan_subdoses


def totals(plan):
    return tuple(sum(part[i] for part in plan) for i in range(3))


def test_a_small_dose_is_one_part():
    assert plan_subdoses(0.5, 0.0, 0.5, 1.0) == [(0.5, 0.0, 0.5)]


@pytest.mark.parametrize("media, alt, waste, max_subdose", [(1.5, 0, 1.5, 1.0), (3.0, 1.0, 4.0, 1.0), (0.3, 0.3, 0.6, 0.25),
                                                           (0, 0, 5.0, 1.0)])
def test_large_doses_are_halved_until_every_part_fits(media, alt, waste, max_subdose):
    plan = plan_subdoses(media, alt, waste, max_subdose)
    assert len(plan) > 1
    assert all(m + a <= max_subdose + 1e-9 and w <= max_subdose + 1e-9 for m, a, w in plan)
    assert totals(plan) == pytest.approx((media, alt, waste))
    assert len({p for p in plan}) == 1  # equal halves


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        plan_subdoses(-1, 0, 0, 1.0)
    with pytest.raises(ValueError):
        plan_subdoses(1, 0, 1, 0)


def test_automation_parameters_must_be_positive_numbers():
    from reactorkit.builtin_plugins.dosing.automation import positive

    assert positive("exchange_volume_ml", "0.5") == 0.5
    for bad in (0, -1, "x", None):
        with pytest.raises(ValueError, match="exchange_volume_ml"):
            positive("exchange_volume_ml", bad)
