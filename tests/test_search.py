"""`sepipe search` (sepipe.search): the `search:` section's checks, the genome, the front, and on the tiny GRU
the whole loop: same seed same front, a cached candidate not recompiled, a rerun resumes, and a chosen
member's YAML rebuilds the same bytes and figures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sepipe.compress import compressor_of
from sepipe.config import experiment_from_dict
from sepipe.errors import ConfigError
from sepipe.search.config import SearchConfig, search_from_dict
from sepipe.search.front import choose, pareto_front
from sepipe.search.genes import Candidate, Genome

REPO = Path(__file__).resolve().parents[1]
MODEL = {"family": "gru", "input_units": 32, "rnn_units": 24, "dense_units": 32}   # tiny_models.tiny_cfg("gru")
SEARCH = {"population": 4, "generations": 2, "valid_files": 1, "sparsity": [0.0, 0.8], "clusters": [0, 4],
          "uniform": [0.8], "chosen": 2}


def raw_experiment(tmp_path, **search):
    return {"name": "tiny", "seed": 0, "runs_dir": str(tmp_path / "runs"),
            "data": {"cache_dir": str(REPO / ".cache")}, "model": MODEL, "search": {**SEARCH, **search}}


@pytest.mark.parametrize("key, value, option", [
    ("population", 2, "search.population"), ("sparsity", [0.5, 1.0], "search.sparsity"),
    ("clusters", [0, 1], "search.clusters"), ("layers", ["nope"], "search.layers"),
    ("target", "ethos-u99", "search.target"), ("colour", "red", "search.colour"),
    ("valid_files", 0, "search.valid_files"), ("uniform_clusters", [0, 0], "search.uniform_clusters"),
    ("uniform_clusters", [1], "search.uniform_clusters"), ("folder", "../x", "search.folder"),
    ("folder", "", "search.folder"), ("proxy", "exact", "search.proxy"), ("proxy_steps", 0, "search.proxy_steps")])
def test_search_section_errors_are_one_line_naming_the_option(tmp_path, key, value, option):
    with pytest.raises(ConfigError, match=option.replace(".", r"\.")) as info:
        search_from_dict(raw_experiment(tmp_path, **{key: value}))
    assert "\n" not in str(info.value)


def test_a_yaml_without_a_search_section_is_refused(tmp_path):
    raw = raw_experiment(tmp_path)
    del raw["search"]
    with pytest.raises(ConfigError, match="search"):
        search_from_dict(raw)


def test_each_candidate_is_an_offline_variant_with_the_same_per_layer_settings(tmp_path):
    cfg, search = search_from_dict(raw_experiment(tmp_path, sparsity=[0.0, 0.5, 0.9], clusters=[0, 16, 4]))
    genome = Genome.for_experiment(cfg, search)
    assert genome.layers[-1] == "mask" and genome.n_var == 2 * len(genome.layers)
    x = [2, 2, 0, 1, 1, 0, 0, 0, 0, 2, 1, 1]
    candidate = genome.decode(x)
    assert dict(candidate.sparsity) == {"input_dense": 0.9, "rnn_2": 0.5, "mask": 0.5}
    assert dict(candidate.levels) == {"input_dense": 4, "rnn_1": 16, "dense_2": 4, "mask": 16}
    variant = experiment_from_dict({"name": "t", "model": MODEL, "variants": [{"name": "ptq"}, candidate.variant()]})
    offline = compressor_of(variant.variants[1])
    assert offline.layer_targets(variant.model) == dict(candidate.sparsity)
    assert {k: v for k, v in offline.layer_levels(variant.model).items() if v} == dict(candidate.levels)
    assert genome.decode([0] * genome.n_var).variant(name="d") == {"name": "d", "kind": "offline"}


def test_uniform_cluster_points_are_references_and_members_of_the_first_generation(tmp_path):
    from sepipe.search.driver import initial_population, uniform_points

    cfg, search = search_from_dict(raw_experiment(tmp_path, uniform_clusters=[0, 4], population=6))
    genome = Genome.for_experiment(cfg, search)
    assert uniform_points(search) == [(0.8, 0), (0.8, 4)]
    hidden = tuple(name for name in genome.layers if name not in genome.output_layers)
    reference = genome.uniform(0.8, hidden, 4)
    assert reference.label == "uniform 0.8 c4" and dict(reference.levels) == dict.fromkeys(hidden, 4)
    first = [genome.decode(x) for x in initial_population(genome, search, seed=0)]
    assert [c.key for c in first[:3]] == [genome.decode([0] * genome.n_var).key, genome.uniform(0.8, hidden).key,
                                          reference.key]
    assert len(first) == 6



def test_with_a_precision_gene_each_uniform_point_is_seeded_on_every_plan(tmp_path):
    """On the LSTM the int8 uniform points are poor enhancers (issue 13): the 16x8 plan's uniform points are
    references and first-generation members too, same ids as the references (so the front holds them)."""
    from sepipe.search.driver import initial_population

    cfg, search = search_from_dict(raw_experiment(tmp_path, uniform_clusters=[0, 4], population=8, precision=["rnn"]))
    genome = Genome.for_experiment(cfg, search)
    hidden = tuple(name for name in genome.layers if name not in genome.output_layers)
    reference = genome.uniform(0.8, hidden, 4, "p_rnn16")
    assert reference.label == "uniform 0.8 c4 p_rnn16" and reference.base == "p_rnn16"
    first = [genome.decode(x) for x in initial_population(genome, search, seed=0)]
    dense = genome.decode([0] * genome.n_var)
    assert [c.key for c in first[:6]] == [dense.key, Candidate((), (), base="p_rnn16").key,
                                          genome.uniform(0.8, hidden).key, genome.uniform(0.8, hidden, 0, "p_rnn16").key,
                                          genome.uniform(0.8, hidden, 4).key, reference.key]
    assert len(first) == 8

def test_pareto_front_keeps_feasible_non_dominated_points():
    def rec(i, sisdr, flash, cycles, violations=()):
        return {"id": i, "si_sdr": sisdr, "flash_kib": flash, "cycles_total": cycles, "violations": list(violations)}

    records = [rec("a", 10, 100, 100), rec("b", 9, 50, 60), rec("c", 8, 60, 70), rec("d", 12, 10, 10, ["x"]),
               rec("e", 7, 40, 80), rec("a", 10, 100, 100)]
    assert [r["id"] for r in pareto_front(records)] == ["a", "b", "e"]
    assert [r["id"] for r in choose(pareto_front(records), 2)] == ["a", "e"]


# ------------------------------------------------------------------ the loop on the tiny GRU (slow: Vela, TFLite)

@pytest.fixture(scope="module")
def searched(tiny_models, small_dataset, tmp_path_factory):
    """Two searches with the same seed into two folders (the second meets only cached compiles), a rerun
    into the first folder (resumes every candidate)."""
    from sepipe.search import driver

    tmp = tmp_path_factory.mktemp("search")
    cfg, search = search_from_dict(raw_experiment(tmp))
    base = tiny_models["gru"].tflite
    first = driver.search(cfg, search, base, tmp / "first", progress=False)
    second = driver.search(cfg, search, base, tmp / "second", progress=False)
    rerun = driver.search(cfg, search, base, tmp / "first", progress=False)
    return cfg, search, base, tmp, first, second, rerun


def test_same_seed_gives_the_same_front(searched):
    _, _, _, _, first, second, rerun = searched
    fronts = [[r["id"] for r in pareto_front(result["records"])] for result in (first, second, rerun)]
    assert fronts[0] and fronts[0] == fronts[1] == fronts[2]
    figures = [[(r["si_sdr"], r["flash_kib"], r["cycles_total"]) for r in pareto_front(x["records"])]
               for x in (first, second)]
    assert figures[0] == figures[1]


def test_a_cached_candidate_is_not_recompiled(searched):
    _, _, _, _, first, second, _ = searched
    assert first["stats"]["candidates_scored"] > 0
    # same bytes, same target: the second search's compiles all come from the cache the first filled
    assert second["stats"]["vela_cache_hits"] == second["stats"]["candidates_scored"] > 0
    assert second["stats"]["vela_cache_hit_rate"] == 1.0


def test_a_rerun_resumes_every_scored_candidate(searched):
    _, _, _, _, first, _, rerun = searched
    assert rerun["stats"]["candidates_scored"] == 0
    assert rerun["stats"]["candidates_resumed"] == len({r["id"] for r in first["records"] + first["references"]})


def test_a_chosen_configuration_rebuilds_the_same_bytes_and_figures(searched):
    from sepipe.search.front import write_outputs
    from sepipe.search.scoring import ScoringSpec, compile_candidate, proxy_quality, state_for

    cfg, search, base, tmp, first, _, _ = searched
    raw = {k: v for k, v in raw_experiment(tmp).items() if k != "search"}
    out = write_outputs(tmp / "out", cfg, raw, first, search.chosen)
    assert (tmp / "out" / "front.png").stat().st_size > 0 and (tmp / "out" / "front.md").is_file()
    page = (tmp / "out" / "search.html").read_text()
    assert "data:image/png;base64," in page and "Proxy figures" in page
    assert all(candidate in page for candidate in out["front"]) and all(name in page for name in out["chosen"])
    by_id = {r["id"]: r for r in first["records"]}
    for name, candidate_id in out["chosen"].items():
        record = by_id[candidate_id]
        chosen = experiment_from_dict(yaml.safe_load((tmp / "out" / "chosen" / name).read_text()))
        assert chosen.name == cfg.name and chosen.dense_variant.name == cfg.dense_variant.name
        variant = chosen.variants[-1]
        # what the convert stage of `sepipe run` does for an offline variant (stages.quantize._convert_offline)
        rebuilt = compressor_of(variant).apply_to_quantized(Path(base).read_bytes(), chosen.model)
        import hashlib
        assert hashlib.sha256(rebuilt).hexdigest() == record["tflite_sha256"]
        state = state_for(ScoringSpec(cfg, search, str(base), str(tmp / "work")))
        assert proxy_quality(state, rebuilt)["si_sdr"] == record["si_sdr"]
        compiled, _ = compile_candidate(state, rebuilt, "again")
        assert (compiled["flash_kib"], compiled["cycles_total"]) == (record["flash_kib"], record["cycles_total"])


def test_search_config_defaults_validate():
    SearchConfig().validate("<test>")


def test_a_chosen_yaml_can_carry_the_member_fine_tuned(tmp_path):
    from sepipe.search.front import chosen_yaml

    cfg, _ = search_from_dict(raw_experiment(tmp_path, precision=["rnn"], finetune_epochs=2))
    raw = {k: v for k, v in raw_experiment(tmp_path).items() if k != "search"}
    record = {"id": "abc", "si_sdr": 1.0, "flash_kib": 2.0, "cycles_total": 3, "tflite_sha256": "0" * 64,
              "sparsity": {"rnn_1": 0.8, "mask": 0.5}, "levels": {"rnn_1": 4}, "base": "p_rnn16"}
    text = chosen_yaml(raw, cfg, record, "sabc", {"p_rnn16": (("rnn", "int16x8"),)}, finetune_epochs=2)
    chosen = experiment_from_dict(yaml.safe_load(text))
    kinds = {v.name: v.kind for v in chosen.variants}
    assert kinds == {"ptq": "ptq", "p_rnn16": "ptq", "sabc": "offline", "fabc": "cluster"}
    tuned = compressor_of(next(v for v in chosen.variants if v.name == "fabc"))
    assert tuned.layer_targets(chosen.model) == {"rnn_1": 0.8, "mask": 0.5}
    assert tuned.config.layer_clusters == ("rnn_1=4", "mask=0")       # mask pruned, not clustered
    assert chosen.precision_of("fabc") == chosen.precision_of("p_rnn16") == {"rnn": "int16x8"}
    assert chosen.variants[-2].base == "p_rnn16"
    unclustered = {**record, "levels": {}}
    text = chosen_yaml(raw, cfg, unclustered, "sabc", {"p_rnn16": (("rnn", "int16x8"),)}, finetune_epochs=2)
    tuned = experiment_from_dict(yaml.safe_load(text)).variants[-1]
    assert (tuned.kind, tuned.layers) == ("weight", ("rnn_1=0.8", "mask=0.5"))
