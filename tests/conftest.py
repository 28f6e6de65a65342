import dataclasses
import os

import pytest

# Tests run many tiny models at once; one thread each keeps the two CI cores busy without
# oversubscription, and makes timings irrelevant to results. Set, not defaulted: the cache keys
# the tests build name one thread, and a shell's own OMP_NUM_THREADS (even an empty one, which
# libgomp reports on every subprocess's stderr) would break them and the one-line-error checks.
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def session_trial_cache(tmp_path_factory):
    """The trial cache is shared by every run on a machine. Tests get their own: one for the
    session fixtures (set up first), then one per test, so no test is answered by another's
    results."""
    os.environ["MAITSEARCH_CACHE"] = str(tmp_path_factory.mktemp("session-trial-cache"))


@pytest.fixture(autouse=True)
def private_trial_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MAITSEARCH_CACHE", str(tmp_path_factory.mktemp("trial-cache")))


@pytest.fixture(scope="session")
def digits():
    from maitsearch.data import load_data

    return load_data("digits", image_size=16)


@pytest.fixture(scope="session")
def quick_config():
    from maitsearch.config import load_config

    return load_config("quick")


@pytest.fixture(scope="session")
def quick_results(tmp_path_factory, quick_config, digits):
    """Real `quick` runs of every strategy in one results folder, shared by the contract test
    and the results tests: {strategy: RunSummary}."""
    from maitsearch.search.launch import run_search

    root = tmp_path_factory.mktemp("results")
    # two epochs: a curve, and an alpha history, of more than one point
    quick_config = quick_config.replace(proxy=quick_config.proxy.replace(epochs=2))
    configs = {
        "als": quick_config.replace(keep_checkpoints=True),
        "optuna": quick_config.replace(strategy="optuna", trials=4, optuna=dataclasses.replace(
            quick_config.optuna, pruner="none", objectives=["accuracy", "attention_cost"])),
        "soft": quick_config.replace(strategy="soft"),
        "supernet": quick_config.replace(strategy="supernet", supernet=dataclasses.replace(
            quick_config.supernet, epochs=1, evaluations=8, batch=4, top=1)),
        "presets": quick_config.replace(strategy="presets", baselines=["none", "sch1", "all@3x5"]),
    }
    summaries = {name: run_search(config, results_root=root, name=f"quick-{name}", data=digits)
                 for name, config in configs.items()}
    return root, summaries


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on 127.0.0.1. Skips with a reason where the server binaries are
    missing; CI sets MAITSEARCH_REQUIRE_POSTGRES=1, which turns that skip into a failure."""
    from .postgres import Server

    server = Server()
    if not server.available:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        if os.environ.get("MAITSEARCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        server.start()
        yield server
    finally:
        server.stop()
