"""The synthetic world: profiles, attack motifs, knobs and the generator API."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from importlib import resources

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sentinel_jax.config import Config, ConfigError, apply_overrides, load_config
from sentinel_jax.data.store import Dataset, load_dataset
from sentinel_jax.data.strace import read_strace_traces
from sentinel_jax.data.synthetic import (
    Settings,
    SyntheticDatasetGenerator,
    describe_trace,
    generate_synthetic_traces,
    window_count,
)
from sentinel_jax.data.synthetic_attacks import (
    FAMILIES,
    MOTIFS,
    CompiledMotif,
    Filler,
    mimicry_order,
    parse_step,
)
from sentinel_jax.data.synthetic_profiles import (
    PHASES,
    TokenTable,
    build_phase,
    build_profile,
    format_token,
    load_profile_files,
    parse_token,
    sample_normal_tokens,
)
from sentinel_jax.data.syscalls import canonical_name
from sentinel_jax.data.tags import TAG_BIT
from sentinel_jax.data.traces import NORMAL, window_starts

SMALL = Settings(num_samples=1_500, seed=3)


@pytest.fixture(scope="module")
def small_traces():
    return generate_synthetic_traces(SMALL)


def tokens_of(trace, masked: bool | None = None) -> list[str]:
    """The trace's events as tokens, optionally only (non-)attack events."""
    tokens = [format_token(n, int(m)) for n, m in zip(trace.names, trace.tags,
                                                       strict=True)]
    if masked is None:
        return tokens
    return [t for t, a in zip(tokens, trace.attack_mask, strict=True) if a == masked]


# ------------------------------------------------------------------ tables

def test_profile_tables_cover_the_programs_the_issue_names():
    names = {raw["name"] for raw in load_profile_files()}
    assert {"shell", "web_server", "database", "compiler", "editor",
            "package_manager", "cron_job", "interactive_python"} <= names
    for raw in load_profile_files():
        assert set(raw["phases"]) == set(PHASES)
        assert raw["fitted_from"]["events"] > 500, raw["name"]
        # Modern glibc programs as strace shows them: aliases already folded.
        names_used = {t.split("+")[0] for t in raw["tokens"]}
        assert all(canonical_name(n) == n for n in names_used), raw["name"]


def test_fitted_profiles_show_real_program_start_up():
    startup_tokens = set()
    for raw in load_profile_files():
        phase = raw["phases"]["startup"]
        used = {raw["tokens"][t] for t, _ in phase["start"]} | {
            raw["tokens"][b] for _, b, _ in phase["transitions"]}
        startup_tokens |= {parse_token(t)[0] for t in used}
    assert {"execve", "mmap", "openat", "rseq", "mprotect", "newfstatat"} <= \
        startup_tokens


def test_profiles_are_fitted_on_the_monitors_strace_flags():
    # -yy names each descriptor: reads of a socket or of /proc carry tags.
    tagged = set()
    for raw in load_profile_files():
        tagged |= {t for t in raw["tokens"] if "+" in t}
    assert {"read+proc_info_read", "futex"} <= tagged | {
        t for raw in load_profile_files() for t in raw["tokens"]}
    assert any(t.split("+")[0] in ("chmod", "fchmodat") and "perm_change" in t
               for t in tagged)


def test_replayed_traces_are_verbatim_recorded_excerpts():
    raw = next(r for r in load_profile_files() if r["name"] == "shell")
    table = TokenTable()
    profile = build_profile(raw, table, seed=0)
    assert profile.excerpts and all(len(e) for e in profile.excerpts)
    excerpts = [" ".join(map(str, e.tolist())) for e in profile.excerpts]
    rng = np.random.default_rng(0)
    replayed = sample_normal_tokens(profile, rng, 40, 4, replay=1.0)
    markov = sample_normal_tokens(profile, np.random.default_rng(0), 40, 4)
    # Same lengths as the chain's traces; each begins with a recorded stretch
    # as long as the shorter of the trace and its excerpt.
    assert [len(t) for t in replayed] == [len(t) for t in markov]
    shortest = min(len(e) for e in profile.excerpts)
    for trace in replayed:
        head = " ".join(map(str, trace[:min(len(trace), shortest)].tolist()))
        assert any(f" {head} " in f" {excerpt} " for excerpt in excerpts)
    assert sum(" ".join(map(str, t[:20].tolist())) in e for t in markov
               for e in excerpts) < 40


def test_filler_replaces_untagged_body_calls_by_unmarked_host_calls():
    table = TokenTable()
    motif = next(m for m in MOTIFS["crypto_mining"] if m.variant == "c")
    compiled = CompiledMotif(motif, table)
    host = np.array([table.intern("poll"), table.intern("read")], np.int32)
    filler = Filler(host, np.array([0.5, 0.5]), share=1.0)
    tokens, marked = compiled.sample(np.random.default_rng(1), None, filler)
    names = table.names[tokens]
    body_untagged = {s.token for s in motif.body if "+" not in s.token}
    # Every untagged body call became a host call, and is not marked.
    assert not set(names[marked]) & (body_untagged - {
        s.token for s in motif.setup + motif.teardown})
    assert set(tokens[~marked]) <= set(host.tolist())
    tagged = table.masks[tokens] != 0
    assert marked[tagged].all()
    plain, plain_marked = compiled.sample(np.random.default_rng(1), None)
    assert plain_marked.all() and "futex" in set(table.names[plain])


@given(st.integers(0, 2_000), st.integers(1, 100), st.integers(1, 100))
def test_window_count_matches_window_starts(length, time, stride):
    assert window_count(length, time, stride) == len(window_starts(length, time,
                                                                   stride))


def test_phase_model_only_takes_fitted_transitions():
    table = TokenTable()
    ids = np.array([table.intern(t) for t in ("read", "write", "close", "openat")])
    raw = {"start": [[3, 5]], "transitions": [[3, 0, 4], [0, 1, 9], [0, 0, 1],
                                               [1, 0, 3], [1, 2, 2]],
           "lengths": {"median": 30, "log_std": 0.5, "min": 5, "max": 80}}
    rng = np.random.default_rng(0)
    model = build_phase("toy", "loop", raw, ids, rng, variants=4,
                        concentration=5.0)
    lengths = model.sample_lengths(rng, 200)
    assert lengths.min() >= 5 and lengths.max() <= 80
    chains = model.sample(rng, lengths, rng.integers(0, 4, 200))
    allowed = {(ids[a], ids[b]) for a, b, _ in raw["transitions"]}
    # close is never left in the data: the chain restarts at openat.
    allowed.add((ids[2], ids[3]))
    for row, length in zip(chains, lengths, strict=True):
        assert (row[length:] == -1).all() and (row[:length] >= 0).all()
        assert row[0] == ids[3]
        assert set(zip(row[:length - 1], row[1:length], strict=True)) <= allowed


# ------------------------------------------------------------------ motifs

def test_parse_step_and_token_errors():
    assert parse_step("ptrace+ptrace_write*4-16?0.5").high == 16
    assert parse_step("close").probability == 1.0
    with pytest.raises(ValueError, match="below low"):
        parse_step("ptrace*9-2")
    with pytest.raises(ValueError, match="expected token"):
        parse_step("ptrace x")
    with pytest.raises(ValueError, match="unknown tag"):
        parse_token("openat+no_such_tag")
    assert parse_token("open+cred_read") == ("openat", 1 << TAG_BIT["cred_read"])


def test_every_family_has_three_tool_variants_with_certain_tagged_steps():
    assert tuple(MOTIFS) == FAMILIES
    for family, motifs in MOTIFS.items():
        assert {m.variant for m in motifs} == {"python", "c", "shell"}, family
        for motif in motifs:
            certain = [s for s in motif.steps if "+" in s.token and
                       s.probability == 1.0]
            assert certain, f"{family}/{motif.variant} has no certain tagged step"


# Calls as strace prints them, and the token the attack motifs use for them:
# the motifs' tags must be what the project's strace reader derives.
PARSER_GOLDEN = [
    ('connect(5, {sa_family=AF_INET, sin_port=htons(443), '
     'sin_addr=inet_addr("93.184.216.34")}, 16) = 0', "connect+socket_remote"),
    ('sendto(5, "", 3, 0, NULL, 0) = 3', "sendto+socket_remote"),
    ('connect(6, {sa_family=AF_INET, sin_port=htons(22), '
     'sin_addr=inet_addr("10.0.0.6")}, 16) = -1 ECONNREFUSED (Connection refused)',
     "connect+socket_remote+error_other"),
    ("dup2(5, 1) = 1", "dup2+stdio_socket"),
    ('openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = 7', "openat+cred_read"),
    ('read(7, "", 4096) = 900', "read+cred_read"),
    ('openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = -1 EACCES (Permission denied)',
     "openat+cred_read+denied"),
    ('openat(AT_FDCWD, "/etc/hosts", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 8',
     "openat+sysconf_write"),
    ('write(8, "", 1) = 1', "write+sysconf_write"),
    ('rename("/etc/hosts.new", "/etc/hosts") = 0', "rename+sysconf_write"),
    ('openat(AT_FDCWD, "/etc/ld.so.preload", O_WRONLY|O_CREAT|O_APPEND, 0644) = 9',
     "openat+persist_write+sysconf_write"),
    ('symlink("/etc/systemd/system/x.service", '
     '"/etc/systemd/system/multi-user.target.wants/x.service") = 0',
     "symlink+persist_write+sysconf_write"),
    ('openat(AT_FDCWD, "/dev/input/event0", O_RDONLY) = 10', "openat+input_device"),
    ('read(10, "", 24) = 24', "read+input_device"),
    ('openat(AT_FDCWD, "/proc/1234/mem", O_RDWR) = 11', "openat+proc_mem_access"),
    ('write(11, "", 8) = 8', "write+proc_mem_access"),
    ('openat(AT_FDCWD, "/proc/1234/maps", O_RDONLY) = 12', "openat+proc_info_read"),
    ("ptrace(PTRACE_ATTACH, 1234) = 0", "ptrace+ptrace_attach"),
    ("ptrace(PTRACE_POKETEXT, 1234, 0x7f00, 0x90) = 0", "ptrace+ptrace_write"),
    ("ptrace(PTRACE_GETREGS, 1234, NULL, 0x7ffd) = 0", "ptrace"),
    ("kill(1234, SIGUSR1) = 0", "kill+signal_other"),
    ('finit_module(3, "", 0) = 0', "finit_module+module_load"),
    ("setgid(0) = 0", "setgid+uid_zero"),
    ("setresuid(0, 0, 0) = 0", "setresuid+uid_zero"),
    ('truncate("/var/log/auth.log", 0) = 0', "truncate+log_delete"),
    ('unlink("/root/.bash_history") = 0', "unlink+log_delete"),
    ('chmod("/tmp/.sh", 04755) = 0', "chmod+setuid_bit"),
    ('execve("/tmp/.sh", ["sh"], 0x0 /* 0 vars */) = 0', "execve+tmp_exec"),
    ('openat(AT_FDCWD, "/tmp/.x", O_WRONLY|O_CREAT|O_TRUNC, 0755) = 13',
     "openat+hidden_write"),
    ("mmap(NULL, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, "
     "-1, 0) = 0x7f0000000000", "mmap+mem_wx"),
    ('utimensat(AT_FDCWD, "/usr/bin/ls", [{tv_sec=978307200, tv_nsec=0}, '
     '{tv_sec=978307200, tv_nsec=0}], 0) = 0', "utimensat+time_set"),
    ('openat(AT_FDCWD, "/usr/bin/ls", O_WRONLY|O_TRUNC) = 14',
     "openat+sysbin_write"),
    ('memfd_create("x", MFD_CLOEXEC) = 15', "memfd_create+memfd"),
]


def test_motif_tags_are_what_the_strace_reader_derives(tmp_path):
    setup = ['socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 5',
             'socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 6']
    log = tmp_path / "golden.strace"
    log.write_text("".join(f"4242  {line}\n" for line in
                           setup + [line for line, _ in PARSER_GOLDEN]))
    (trace,) = read_strace_traces(log)
    derived = tokens_of(trace)[len(setup):]
    assert derived == [token for _, token in PARSER_GOLDEN]
    used = {step.token for motifs in MOTIFS.values() for m in motifs
            for step in m.steps}
    assert {token for _, token in PARSER_GOLDEN} <= used


def test_recorded_attack_demonstrations_match_a_motif_of_their_family():
    text = resources.files("sentinel_jax.data").joinpath(
        "profiles", "attack_observations.json").read_text()
    demos = json.loads(text)["demos"]
    assert len(demos) >= 8
    # Demonstrations ran on loopback, in a scratch folder outside any home
    # (where chmod is perm_change); motifs talk to remote hosts, in a home.
    def distinctive(token: str) -> str | None:
        name, *tags = token.replace("socket_loopback", "socket_remote").split("+")
        tags = [t for t in tags if t not in ("error_other", "recon_read",
                                             "exec_interpreter", "perm_change")]
        return "+".join([name, *tags]) if tags else None

    checked = 0
    for name, demo in demos.items():
        observed = {distinctive(t) for t in demo["tagged_events"]} - {None}
        observed -= {"execve+exec_shell"} if demo["family"] != "lateral_movement" \
            else set()
        if not observed:
            continue
        motif_tokens = [{s.token for s in m.steps} for m in MOTIFS[demo["family"]]]
        assert any(observed <= tokens for tokens in motif_tokens), (name, observed)
        checked += 1
    assert checked >= 7


# --------------------------------------------------------------- generator

def test_reproducible_by_seed(small_traces):
    again = generate_synthetic_traces(SMALL)
    assert [t.trace_id for t in again] == [t.trace_id for t in small_traces]
    for a, b in zip(again, small_traces, strict=True):
        assert a.names == b.names and np.array_equal(a.tags, b.tags)
        assert (a.attack_mask is None) == (b.attack_mask is None)
        if a.attack_mask is not None:
            assert np.array_equal(a.attack_mask, b.attack_mask)
    other = generate_synthetic_traces(Settings(num_samples=1_500, seed=4))
    assert [t.names for t in other] != [t.names for t in small_traces]


def test_attack_traces_embed_their_family_motif(small_traces):
    attacks = [t for t in small_traces if t.label == 1]
    assert {t.family for t in attacks} == set(FAMILIES)
    for trace in attacks:
        origin = describe_trace(trace.trace_id)
        assert origin["family"] == trace.family and trace.group.startswith(
            trace.family)
        assert trace.attack_mask.any()
        if origin["variant"] == "mimicry":
            continue
        (motif,) = [m for m in MOTIFS[trace.family]
                    if m.variant == origin["variant"]]
        attack_tokens = tokens_of(trace, masked=True)
        # Only the motif's own steps are marked, and its certain tags show.
        steps = {format_token(*parse_token(s.token)) for s in motif.steps}
        assert set(attack_tokens) <= steps
        certain = {format_token(*parse_token(s.token)) for s in motif.steps
                   if "+" in s.token and s.probability == 1.0}
        assert certain <= set(attack_tokens), trace.trace_id


def test_mimicry_runs_keep_the_hosts_calls_and_change_their_order():
    events = np.arange(40, dtype=np.int32) % 7
    ordered = mimicry_order(events, "keylogging", table_size=7)
    assert sorted(ordered.tolist()) == sorted(events.tolist())
    assert not np.array_equal(ordered, events)
    traces = generate_synthetic_traces(Settings(num_samples=800, mimicry=1.0,
                                                seed=1))
    mimicry = [t for t in traces if t.label == 1]
    assert mimicry and all(":mimicry:" in t.trace_id for t in mimicry)
    host_tags = 0
    for trace in mimicry:
        assert trace.attack_mask.sum() >= 8
        host_tags |= int(np.bitwise_or.reduce(trace.tags[trace.attack_mask]))
    # No attack-specific tag appears: only what benign programs also show.
    benign_tags = int(np.bitwise_or.reduce(np.concatenate(
        [t.tags for t in traces if t.label == 0])))
    assert host_tags & ~benign_tags == 0


def test_window_count_is_exact_and_label_balance_as_configured():
    for ratio in (0.7, 0.5):
        generator = SyntheticDatasetGenerator(
            {"num_samples": 2_000, "normal_ratio": ratio, "seed": 2})
        windows, labels, metadata = generator.generate_dataset()
        assert len(windows) == 2_000
        assert abs(labels.mean() - (1 - ratio)) < 0.01
        counts = windows.counts()
        families = set().union(*(c["by_family"] for c in counts.values()))
        assert families == {NORMAL, *FAMILIES}
        assert metadata["generator"]["normal_ratio"] == ratio


def test_attack_runs_never_span_two_splits():
    windows, _, _ = SyntheticDatasetGenerator(
        {"num_samples": 3_000, "seed": 5}).generate_dataset()
    split_of_group: dict[str, set[str]] = {}
    for record in windows.traces:
        split_of_group.setdefault(record["group"], set()).add(record["split"])
    assert all(len(splits) == 1 for splits in split_of_group.values())
    # Runs have several processes, so the group rule has work to do.
    processes = Counter(r["group"] for r in windows.traces if r["label"])
    assert sum(count > 1 for count in processes.values()) > len(processes) / 4


def test_generated_traces_go_through_the_common_encoder(tmp_path):
    config = apply_overrides(Config(), ["data.num_samples=600",
                                        "data.noise=0.2", "data.seed=9"])
    generator = SyntheticDatasetGenerator(config)
    X, y, metadata = generator.generate_dataset()
    assert isinstance(X, Dataset) and X.ids.shape == (600, 64)
    assert X.hist.shape == (600, 128) and X.vocabulary.names[0] == "<pad>"
    np.testing.assert_allclose(X.hist[:, :X.name_channels].sum(1), 1.0, rtol=1e-5)
    # Window labels are exact: an attack window holds a marked event.
    assert metadata["source"] == "synthetic"
    generator.save_dataset(X, y, metadata, tmp_path / "synthetic")
    loaded = load_dataset(tmp_path / "synthetic")
    assert np.array_equal(loaded.ids, X.ids) and np.array_equal(loaded.labels, y)
    assert loaded.info["families"] == list(FAMILIES)
    with pytest.raises(ValueError, match="labels"):
        generator.save_dataset(X, 1 - y, metadata, tmp_path / "bad")


def test_reference_dict_maps_onto_the_data_section():
    generator = SyntheticDatasetGenerator({"num_samples": 100, "normal_ratio": 0.6,
                                           "sequence_length": 32,
                                           "feature_dim": 112})
    assert generator.settings.time == 32 and generator.data_config.feature_dim == 112
    with pytest.raises(ConfigError, match="num_sample"):
        SyntheticDatasetGenerator({"num_sample": 100})
    with pytest.raises(ConfigError, match="normal_ratio"):
        SyntheticDatasetGenerator({"normal_ratio": 1.5})
    with pytest.raises(ValueError, match="attack_intensity"):
        generate_synthetic_traces(Settings(num_samples=50, attack_intensity=0.0))


def test_attack_intensity_sets_the_attack_share_of_windows():
    def attack_share(intensity: float) -> float:
        traces = generate_synthetic_traces(Settings(
            num_samples=700, attack_intensity=intensity, mimicry=0.0, seed=6))
        shares = []
        for trace in traces:
            if trace.label:
                marked = np.flatnonzero(trace.attack_mask)
                span = trace.attack_mask[marked[0]:marked[-1] + 1]
                shares.append(span.mean())
        return float(np.mean(shares))

    assert attack_share(0.25) < attack_share(0.5) < attack_share(0.9)


# ------------------------------------------------------ honest difficulty

def _bigram_features(ids: np.ndarray, name_channels: int, buckets: int = 1024
                     ) -> np.ndarray:
    first, second = ids[:, :-1].astype(np.int64), ids[:, 1:].astype(np.int64)
    valid = (first > 0) & (second > 0)
    codes = (first * name_channels + second) % buckets
    features = np.zeros((len(ids), buckets), np.float32)
    rows = np.repeat(np.arange(len(ids)), first.shape[1])[valid.ravel()]
    np.add.at(features, (rows, codes.ravel()[valid.ravel()]), 1.0)
    return features / np.maximum(valid.sum(1, keepdims=True), 1)


def test_histogram_baseline_falls_short_on_mimicry_families():
    X, y, _ = SyntheticDatasetGenerator({"num_samples": 8_000,
                                         "seed": 11}).generate_dataset()
    # Out-of-fold scores for every window, folds split by attack run.
    groups = np.array([r["group"] for r in X.traces])[X.trace_index]
    mimicry = np.array([":mimicry:" in r["trace_id"]
                        for r in X.traces])[X.trace_index]
    family, negative = X.family_of(), y == 0
    features = {"hist": X.hist,
                "order": np.concatenate(
                    [X.hist, _bigram_features(X.ids, X.name_channels, 256)],
                    axis=1)}
    results = {}
    for name, inputs in features.items():
        model = make_pipeline(StandardScaler(),
                              LogisticRegression(max_iter=200, C=0.05))
        scores = cross_val_predict(model, inputs, y, groups=groups,
                                   cv=GroupKFold(3), method="decision_function")

        def auc(positive, scores=scores):
            rows = negative | (positive & (y == 1))
            return roc_auc_score(y[rows], scores[rows])

        results[name] = {
            "mimicry": auc(mimicry), "motif": auc(~mimicry),
            "per_family": {f: auc(mimicry & (family == f)) for f in FAMILIES}}
    hist, order = results["hist"], results["order"]
    assert hist["motif"] > 0.9  # tags make the plain families easy
    assert hist["mimicry"] < 0.7  # order is the only signal there
    assert max(hist["per_family"].values()) < 0.8, hist["per_family"]
    assert order["mimicry"] > hist["mimicry"] + 0.12, (order, hist)
    better = [f for f in FAMILIES
              if order["per_family"][f] > hist["per_family"][f]]
    assert len(better) >= 8, (order["per_family"], hist["per_family"])


def test_data_benchmark_script_follows_the_command_line_contract(repo_root,
                                                                 tmp_path):
    spec = importlib.util.spec_from_file_location(
        "benchmark_data", repo_root / "experiments" / "benchmark_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "bench"
    assert script.main(["--out", str(out), "--quiet",
                        "--set", "data.num_samples=300"]) == 0
    report = json.loads((out / "benchmark_data.json").read_text())
    assert report["synthetic"]["windows"] == 300
    assert report["synthetic"]["total_s"] > 0
    assert script.run_main(script.main, ["--out", str(out),
                                         "--set", "data.noise=2"]) == 2


def test_generate_data_script_writes_a_synthetic_dataset(repo_root, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "generate_data", repo_root / "experiments" / "generate_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "small"
    assert script.main(["--source", "synthetic", "--quiet", "--out", str(out),
                        "--config", str(repo_root / "configs" / "small.yaml")]) == 0
    dataset = load_dataset(out)
    config = load_config(repo_root / "configs" / "small.yaml")
    assert len(dataset) == config.data.num_samples
    assert abs(dataset.labels.mean() - (1 - config.data.normal_ratio)) < 0.01
    assert set(dataset.family_names) == {NORMAL, *FAMILIES}
