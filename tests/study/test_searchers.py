"""SeedRepeater: seeds as an axis of an Optuna search, and what Optuna is told."""

import pickle

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from search_spaces import get_space
from study.searchers import COMPLETE, FAILED, PRUNED, SeedRepeater, classify


def repeater(repeats=3, max_concurrent=10, epochs=5, seed=0):
    inner = OptunaSearch(
        space=get_space("drop_activation").define,
        metric="val_error",
        mode="min",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    return SeedRepeater(inner, repeats=repeats, epochs=epochs, max_concurrent=max_concurrent)


def optuna_states(search: SeedRepeater) -> list[TrialState]:
    return [t.state for t in search.searcher._ot_study.trials]


def finished(value, epochs=5):
    return {"val_error": value, "training_iteration": epochs}


def test_each_config_runs_with_seeds_zero_to_k_minus_one():
    search = repeater(repeats=3)
    configs = [search.suggest(f"t{i}") for i in range(6)]
    assert [c["seed"] for c in configs] == [0, 1, 2, 0, 1, 2]
    assert configs[0]["da_p"] == configs[1]["da_p"] == configs[2]["da_p"] != configs[3]["da_p"]
    assert all(c["activation"] == "drop_activation" for c in configs)


def test_optuna_sees_the_mean_over_seeds_once_every_seed_finished():
    search = repeater(repeats=2)
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", finished(0.2))
    assert optuna_states(search) == [TrialState.RUNNING]
    search.on_trial_complete("b", finished(0.4))
    trial = search.searcher._ot_study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx(0.3)


def test_a_seed_stopped_early_makes_the_config_pruned_not_complete():
    search = repeater(repeats=2)
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", finished(0.2))
    search.on_trial_complete("b", {"val_error": 0.9, "training_iteration": 2})
    assert optuna_states(search) == [TrialState.PRUNED]


@pytest.mark.parametrize(
    ("result", "error"),
    [(None, True), ({"val_error": 0.1, "training_iteration": 1, "failure": "loss nan"}, False)],
)
def test_an_errored_or_diverged_seed_makes_the_config_failed(result, error):
    search = repeater(repeats=2)
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", finished(0.2))
    search.on_trial_complete("b", result, error=error)
    assert optuna_states(search) == [TrialState.FAIL]


def test_concurrency_is_limited_by_the_repeater():
    search = repeater(repeats=2, max_concurrent=2)
    assert search.suggest("a") is not None and search.suggest("b") is not None
    assert search.suggest("c") is None
    search.on_trial_complete("a", finished(0.1))
    assert search.suggest("c") is not None


def test_state_survives_a_restore_the_way_tune_does_it(tmp_path):
    """Tune saves a wrapper's get_state() and the inner searcher's own file, then restores both."""
    search = repeater(repeats=2)
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", finished(0.2))
    wrapper_state = pickle.loads(pickle.dumps(search.get_state()))
    search.searcher.save(str(tmp_path / "inner.pkl"))

    restored = repeater(repeats=2, seed=99)
    restored.set_state(wrapper_state)
    restored.searcher.restore(str(tmp_path / "inner.pkl"))
    restored.on_trial_complete("b", finished(0.4))
    assert restored.searcher._ot_study.trials[0].value == pytest.approx(0.3)
    assert "searcher" not in wrapper_state


def test_same_search_seed_same_sequence_of_configs():
    """Completed one at a time, TPE's suggestions are a function of the search seed."""
    sequences = []
    for _ in range(2):
        search, sequence = repeater(repeats=1, seed=7), []
        for i in range(12):
            sequence.append(search.suggest(f"t{i}")["da_p"])
            search.on_trial_complete(f"t{i}", finished(abs(sequence[-1] - 0.9)))
        sequences.append(sequence)
    assert sequences[0] == sequences[1]
    assert sequences[0][0] != repeater(repeats=1, seed=8).suggest("t0")["da_p"]


@pytest.mark.parametrize(
    ("result", "error", "expected"),
    [
        ({"val_error": 0.1, "training_iteration": 5}, False, (COMPLETE, 0.1)),
        ({"val_error": 0.1, "training_iteration": 3}, False, (PRUNED, None)),
        ({"training_iteration": 5}, False, (FAILED, None)),
        (None, True, (FAILED, None)),
    ],
)
def test_classify(result, error, expected):
    assert classify(result, error, "val_error", 5) == expected
