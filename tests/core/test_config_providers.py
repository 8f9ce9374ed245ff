"""STANDARD_CONFIG_PROVIDERS: a config key that a known distribution's plugin adds names that
distribution when it is missing, instead of a spelling suggestion."""

from __future__ import annotations

import pytest

from det.core import get_cfg
from det.core.config import ConfigKeyError
from det.core.registry import STANDARD_CONFIG_PROVIDERS, config_key_provider


@pytest.fixture
def planted(monkeypatch):
    monkeypatch.setitem(STANDARD_CONFIG_PROVIDERS, "MODEL.PLANTED_PROJECT", "det-planted-project")
    monkeypatch.setitem(STANDARD_CONFIG_PROVIDERS, "MODEL.PLANTED_PROJECT.DEEP", "det-planted-deep")


def test_the_longest_listed_prefix_decides(planted):
    assert config_key_provider("MODEL.PLANTED_PROJECT") == ("det-planted-project",)
    assert config_key_provider("MODEL.PLANTED_PROJECT.WIDTH") == ("det-planted-project",)
    assert config_key_provider("MODEL.PLANTED_PROJECT.DEEP.X") == ("det-planted-deep",)
    assert config_key_provider("MODEL.PLANTED_PROJECTS") == ()  # a prefix is a whole section name
    assert config_key_provider("MODEL.RESNETS.DEPTH") == ()


def test_every_row_is_a_section_beyond_the_standard_schema():
    from det.core.config.defaults import _C

    for prefix, dist in STANDARD_CONFIG_PROVIDERS.items():
        node = _C
        section, _, key = prefix.rpartition(".")
        for part in section.split(".") if section else []:
            node = node[part]
        assert key not in node, f"{prefix} is a standard key; it cannot need {dist}"
        assert all(d.startswith("det-") for d in ((dist,) if isinstance(dist, str) else dist)), dist


def test_a_missing_providers_key_names_the_pip_command(planted):
    with pytest.raises(ConfigKeyError) as info:
        get_cfg().merge_from_list(["MODEL.PLANTED_PROJECT.WIDTH", "3"])
    assert str(info.value) == (
        "Non-existent config key: MODEL.PLANTED_PROJECT. This key is added by the distribution "
        "det-planted-project; install it with: pip install det-planted-project")
    assert (info.value.suggestion, info.value.distribution) == (None, "det-planted-project")
    assert isinstance(info.value, KeyError)


def test_other_unknown_keys_keep_the_spelling_suggestion():
    with pytest.raises(ConfigKeyError) as info:
        get_cfg().merge_from_list(["MODEL.RESNETS.DEPHT", "50"])
    assert "did you mean MODEL.RESNETS.DEPTH?" in str(info.value)
    assert info.value.distribution is None
