"""The scripted experiment's choices that do not need a cluster."""

from reactorkit.builtin_plugins.simulation.experiment import profile_yaml, turbidostat_target_for


def test_the_turbidostat_target_stays_within_the_culture_s_reach():
    assert turbidostat_target_for(0.04) == 10.0  # a fresh culture: 10× its first readings
    assert turbidostat_target_for(0.5) == 2.0  # grown during set-up: hold about OD 1
    assert turbidostat_target_for(1.9) == 1.5  # nearly full: still above where it starts
    assert turbidostat_target_for(None) == 10.0


def test_the_profile_carries_the_turbidostat_target():
    text = profile_yaml("worker1", "worker2", 24, turbidostat_target=2.5)
    assert "target_biomass: 2.5" in text and "automation_name: chemostat" in text
