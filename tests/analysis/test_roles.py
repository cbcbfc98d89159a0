"""The roles a run's tables follow (erasure.analysis.roles): named, discovery's selection, or -- when discovery
selects nothing -- a fallback writer with no erasers and a note saying why."""
import pytest

from erasure.analysis.roles import Roles, discovered_roles, named_roles
from erasure.errors import DataError
from erasure.mechanism.names import Component
from erasure.params.load import validate_params
from helpers import repo_params

SOURCE = "metrics/discovery.json"


def _params(**entry):
    raw = repo_params("planted-4l")
    raw["models"]["planted-4l"].update(entry)
    return validate_params(raw)


def _record(selected=None, writers=(), ranking=()):
    return {"selected": selected or {"writer": None, "erasers": [], "rank": None},
            "writers": list(writers), "ranking": list(ranking)}


def test_named_roles_are_the_entrys_own():
    assert named_roles(_params()) == Roles(Component(0, 2), [Component(2, h) for h in range(2, 8)])
    assert named_roles(_params(writer="MLP1", erasers=[])) == Roles(Component(1), [])
    assert named_roles(_params(writer="auto", erasers="auto")) is None


def test_discovery_selection_is_used_when_there_is_one():
    params = _params(writer="auto", erasers="auto")
    roles = discovered_roles(params, _record({"writer": "MLP1", "erasers": ["L2H3", "MLP2"], "rank": 1}), SOURCE)
    assert roles == Roles(Component(1), [Component(2, 3), Component(2)], "discovery")


def test_no_selection_falls_back_to_the_top_relevant_writer():
    params = _params(writer="auto", erasers="auto")
    roles = discovered_roles(params, _record(writers=[{"name": "L1H4"}, {"name": "MLP0"}],
                                             ranking=[{"name": "L1H4", "excluded_by": []}]), SOURCE)
    assert (roles.writer, roles.erasers, roles.source) == (Component(1, 4), [], "fallback")
    assert "no relevant writer has an eraser" in roles.note and "L1H4" in roles.note


def test_no_relevant_writer_falls_back_to_the_best_scored_candidate():
    params = _params(writer="auto", erasers="auto")
    ranking = [{"name": "MLP2", "excluded_by": ["min_rel_norm", "max_overshoot"]}, {"name": "L0H1", "excluded_by": []}]
    roles = discovered_roles(params, _record(ranking=ranking), SOURCE)
    assert (roles.writer, roles.erasers, roles.source) == (Component(2), [], "fallback")
    assert "no writer passes discovery's relevance filters" in roles.note
    assert "excluded by min_rel_norm, max_overshoot" in roles.note


def test_an_empty_ranking_is_a_data_error():
    with pytest.raises(DataError, match=r"^metrics/discovery\.json ranks no writer"):
        discovered_roles(_params(writer="auto", erasers="auto"), _record(), SOURCE)
