"""routing.inputs.version_config: a version's PolicyConfig built once per process, never stale."""
import copy

from routing.engine.policy import DEFAULT_POLICY
from routing.engine.types import PolicyConfig
from routing.inputs import version_config
from routing.models import PolicyVersion


def test_a_version_s_config_is_built_once_and_reused_while_its_stored_config_is_the_same():
    version = PolicyVersion(id=987_654_321, config=DEFAULT_POLICY.to_dict())
    first = version_config(version)
    assert first == PolicyConfig.from_dict(version.config)
    # The same version read again (a new row object, an equal config) gets the same object back.
    again = PolicyVersion(id=version.id, config=copy.deepcopy(version.config))
    assert version_config(again) is first


def test_a_config_changed_in_place_is_built_again():
    version = PolicyVersion(id=987_654_322, config=DEFAULT_POLICY.to_dict())
    before = version_config(version)
    version.config["crowd_overlap"] = before.crowd_overlap + 2
    after = version_config(version)
    assert after.crowd_overlap == before.crowd_overlap + 2
    assert after == PolicyConfig.from_dict(version.config)
    # The memory holds a copy: changing the stored dict afterwards is still seen.
    version.config["crowd_overlap"] = before.crowd_overlap
    assert version_config(version) == before


def test_the_remembered_config_shares_nothing_with_the_row_it_was_built_from():
    config = DEFAULT_POLICY.to_dict()
    config["feature_rules"] = [{"field": "metadata.source", "operator": "in", "value": ["a"],
                                "reason_code": "source", "action": "expert"}]
    first_row = PolicyVersion(id=987_654_323, config=config)
    built = version_config(first_row)
    # Whoever holds the first row changes its rule's list in place; another read of the version is unchanged.
    first_row.config["feature_rules"][0]["value"].append("b")
    fresh_row = PolicyVersion(id=first_row.id, config=copy.deepcopy(config))
    fresh_row.config["feature_rules"][0]["value"] = ["a"]
    assert version_config(fresh_row).feature_rules[0].value == ["a"]
    assert built.feature_rules[0].value == ["a"]
