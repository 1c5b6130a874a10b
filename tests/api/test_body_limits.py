"""JSON request bodies are bounded: size (413), nesting depth and text length (400), in the contract's error shape."""

import falcon.testing
import pytest

from reactorkit.api.app import create_app
from reactorkit.api.body_limits import nesting_depth
from reactorkit.core.config import DEFAULTS, Config
from reactorkit.core.plugins import Registry


@pytest.fixture
def client(unit_env, monkeypatch):
    for key, value in unit_env.env().items():
        monkeypatch.setenv(key, value)
    config = Config()
    config.read_string(DEFAULTS)
    config.read_string("[api]\nmax_body_bytes = 40000\nmax_text_chars = 5000\n")
    return falcon.testing.TestClient(create_app(Registry.installed(), config=config, unit=unit_env.unit, leader=True))


def contract_shape(body):
    return set(body) >= {"error", "cause", "remediation", "status"}


def test_a_body_above_the_size_limit_is_a_413_in_the_contracts_shape(client):
    big = '{"experiment": "' + "x" * 50000 + '"}'
    result = client.simulate_post("/api/experiments", body=big, headers={"Content-Type": "application/json"})
    assert result.status_code == 413
    assert contract_shape(result.json) and result.json["status"] == 413
    assert "40000 bytes" in result.json["cause"] and "max_body_bytes" in result.json["cause"]


def test_a_body_without_content_length_is_read_only_up_to_the_limit(client):
    big = b'{"experiment": "' + b"x" * 50000 + b'"}'
    result = client.simulate_post("/api/experiments", body=big,
                                  headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert result.status_code == 413


def test_five_thousand_nested_brackets_are_a_400_not_a_500(client):
    for body in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000):
        result = client.simulate_post("/api/experiments", body=body, headers={"Content-Type": "application/json"})
        assert result.status_code == 400, result.text
        assert contract_shape(result.json) and "max_json_depth" in result.json["cause"]


def test_a_text_field_above_the_limit_is_a_400_naming_the_field(client):
    result = client.simulate_post("/api/experiments", json={"experiment": "e1", "description": "d" * 6000})
    assert result.status_code == 400
    assert "'description' has 6000 characters" in result.json["cause"]


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert nesting_depth('{"a": "[[[[[[[[", "b": [1, {"c": "\\"]]]"}]}', 64) == 3


def _bounded_by(*lines: str) -> Config:
    config = Config()
    config.read_string(DEFAULTS)
    config.read_string("[api]\n" + "".join(f"{line}\n" for line in lines))
    return config


def test_the_bounds_follow_the_config_the_app_reads_now():
    from reactorkit.api.body_limits import BoundedJSONHandler

    current = [_bounded_by("max_body_bytes = 40000")]
    handler = BoundedJSONHandler(config=lambda: current[0])
    assert handler.bounds()[0] == 40000
    current[0] = _bounded_by("max_body_bytes = 2000", "max_text_chars = 300")  # the files read again after a save
    assert handler.bounds()[::2] == (2000, 300)
    current[0].set("api", "max_json_depth", "5")  # the same object changed (its generation grows)
    assert handler.bounds() == (2000, 5, 300)


@pytest.mark.parametrize("value", ["1O00", "0", "-5", "1.5"])
def test_a_bound_that_is_not_a_positive_integer_is_the_default(value):
    from reactorkit.api.body_limits import DEFAULT_MAX_BODY_BYTES, BoundedJSONHandler

    # a typo saved through the API must not refuse every JSON body (the save that would correct it included)
    handler = BoundedJSONHandler(config=_bounded_by(f"max_body_bytes = {value}"))
    assert handler.bounds()[0] == DEFAULT_MAX_BODY_BYTES


SHARED = "[cluster.topology]\nleader_hostname = leader\nleader_address = 127.0.0.1\n\n[mqtt]\n"


def test_a_save_whose_bound_is_below_its_own_body_is_refused_naming_the_field():
    from reactorkit.api.body_limits import check_save_resendable
    from reactorkit.api.errors import ApiError

    code = SHARED + "[api]\nmax_body_bytes = 100\n"
    with pytest.raises(ApiError) as refused:
        check_save_resendable([[code]], (len(code) + 12, len(code)))
    assert refused.value.status.startswith("400")
    assert "max_body_bytes would be 100" in refused.value.description
    assert f"at least {len(code) + 12}" in refused.value.remediation
    code = SHARED + "[api]\nmax_text_chars = 20\n"
    with pytest.raises(ApiError) as refused:
        check_save_resendable([[code]], (len(code) + 12, len(code)))
    assert "max_text_chars would be 20" in refused.value.description and "max_body_bytes" not in \
        refused.value.description


def test_a_save_whose_bounds_fit_its_own_body_passes():
    from reactorkit.api.body_limits import check_save_resendable

    code = SHARED + "[api]\nmax_body_bytes = 4096\nmax_text_chars = 4096\n"
    check_save_resendable([[code]], (len(code) + 12, len(code)))
    check_save_resendable([[code]], (4096, 4096))  # exactly at the bound: accepted again, as the handler does
    check_save_resendable([[SHARED + "[api]\nmax_body_bytes = 1O0\n"]], (500, 400))  # a typo is the default


def test_every_resulting_config_is_checked_and_a_later_file_wins():
    from reactorkit.api.body_limits import check_save_resendable
    from reactorkit.api.errors import ApiError

    low, high = "[api]\nmax_body_bytes = 100\n", "[api]\nmax_body_bytes = 5000\n"
    check_save_resendable([[SHARED + low, high]], (300, 100))  # the unit's own file raises the shared bound
    with pytest.raises(ApiError):  # units whose own file sets nothing would be locked out
        check_save_resendable([[SHARED + low], [SHARED + low, high]], (300, 100))
    with pytest.raises(ApiError):  # a unit file removing its override leaves the shared low bound
        check_save_resendable([[SHARED + low, "[leds]\nB = x\n"]], (300, 100))
