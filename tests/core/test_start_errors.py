"""A job that cannot start says why in one line, with the same words wherever it is started."""

import io

from reactorkit.core.job_registry import JobAlreadyRunning
from reactorkit.core.start_errors import start_failure


def test_each_start_failure_is_one_line_with_what_to_do():
    out = io.StringIO()
    assert start_failure("stirring", JobAlreadyRunning("stirring is already running"), stream=out) == 1
    assert start_failure("stirring", ConnectionError("broker down"), stream=out) == 1
    assert start_failure("stirring", ValueError("target_rpm must be between 0 and 5000 RPM"), refusals=(ValueError,),
                         refusal_exit=2, refusal_hint=". See --help.", stream=out) == 2
    assert out.getvalue().splitlines() == [
        "Error: stirring is already running. Stop it first with: pio kill --job-name stirring",
        "Error: broker down. Is mosquitto running? Check [mqtt] in config.ini.",
        "Error: target_rpm must be between 0 and 5000 RPM. See --help.",
    ]


def test_anything_else_is_left_to_the_caller():
    assert start_failure("stirring", KeyError("x"), refusals=(ValueError,), stream=io.StringIO()) is None
