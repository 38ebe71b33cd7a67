"""The grid notebook 04 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.config import Params
from nml.models.throughput import NotebookCost, Workload


def describe(params: Params) -> list[str]:
    t = params.turn
    if t is None or not t.enabled:
        return ["(no turn section: nothing to run)"]
    backbones = [b.name + (f" @{b.image_size}px" if b.image_size else "") for b in t.backbones]
    n_runs = len(t.backbones) * len(t.noise) * len(t.methods) * len(t.seeds)
    lines = [f"Table 2: {t.dataset} x backbones {backbones} x noise {[n.label for n in t.noise]}"
             + (f" (+ mild {t.mild_noise.label})" if t.mild_noise else "")
             + f" x {len(t.methods)} methods x seeds {t.seeds} = {n_runs} runs (+ mild); "
             f"{100 * t.validation_fraction:g}% of each noisy training split held out for validation "
             f"(best = test accuracy at the best-validation epoch)"]
    if t.regime.candidates:
        lines.append(f"regime: clean-label LP on validation for {len(t.regime.candidates)} (dataset, backbone) candidates")
    if t.components.enabled:
        lines.append(f"Table 4: TURN components on {t.components.backbones} at {[n.label for n in t.components.noise]}")
    if t.sensitivity.enabled:
        sv = t.sensitivity
        lines.append(f"sensitivity ({sv.backbone}, {sv.noise.label}): E_LP {sv.epochs_lp}, E_FFT {sv.epochs_fft}, tau {sv.tau}")
    if t.purity.enabled:
        lines.append(f"Table 9: tau {t.purity.tau} x {[n.label for n in t.purity.noise]} on {t.purity.backbone}, + cleanlab")
    if t.tsne.enabled:
        lines.append(f"Fig. 2: t-SNE of {t.tsne.backbones} before / after CE-FFT at {[n.label for n in t.tsne.noise]}")
    if t.timing is not None and t.timing.enabled:
        tm = t.timing
        lines.append(f"Fig. 3a / T4: TURN vs DivideMix-LP and UNICON-LP ({tm.epochs} epochs, encoder every batch) "
                     f"on {tm.backbone} at {tm.noise.label}, each fit timed alone")
    return lines


def _runs(params: Params) -> dict[tuple, tuple[str, float, dict]]:
    """Every distinct fine-tuning run of the chapter's studies: key -> (backbone, noise ratio, settings).

    Runs that repeat one of Table 2's (same backbone, noise, method, seed, settings) share its cache
    entry and count once, as they run once. LP-only methods are left out (cached features)."""
    from nml.chapters.ch04_turn.run import FFT_METHODS

    t = params.turn
    runs: dict[tuple, tuple[str, float, dict]] = {}

    def add(backbone, noise, method, seed, **over):
        if method in FFT_METHODS or method == "turn":
            runs.setdefault((backbone, noise.label, method, seed, tuple(sorted(over.items()))),
                            (backbone, noise.ratio, {"method": method, **over}))

    for b in t.backbones:
        for noise in t.noise + ([t.mild_noise] if t.mild_noise else []):
            for s in t.seeds:
                for m in t.methods:
                    add(b.name, noise, m, s)
    if t.components.enabled:
        rows = ((False, "every"), (True, "none"), (True, "once"), (True, "every"))
        for name in t.components.backbones:
            for noise in t.components.noise:
                for lp_step, cleansing in rows:
                    over = {} if (lp_step, cleansing) == (True, "every") else {"lp_step": lp_step, "cleansing": cleansing}
                    for s in t.seeds:
                        add(name, noise, "turn", s, **over)
    if t.sensitivity.enabled:
        sv = t.sensitivity
        lp_epochs = (t.backbone(sv.backbone).lp or t.lp).epochs
        for key, grid, default in (("epochs_lp", sv.epochs_lp, lp_epochs), ("epochs_fft", sv.epochs_fft, t.turn.epochs_fft),
                                   ("tau", sv.tau, t.turn.tau)):
            for v in grid:
                for s in t.seeds:
                    add(sv.backbone, sv.noise, "turn", s, **({} if v == default else {key: v}))
    if t.purity.enabled:
        for noise in t.purity.noise:
            for tau in t.purity.tau:
                for s in t.seeds:
                    add(t.purity.backbone, noise, "turn", s, **({} if tau == t.turn.tau else {"tau": tau}))
    if t.timing is not None and t.timing.enabled:
        for s in t.seeds:  # timed alone: its own cache entry
            add(t.timing.backbone, t.timing.noise, "turn", s, timed_alone=True)
    return runs


def cost(params: Params) -> NotebookCost:
    """Full fine-tuning is the cost: every FFT and TURN run's training epochs at the training rate,
    their per-epoch scoring (validation + test) and TURN's per-epoch loss pass at the extraction
    rate, plus each backbone's feature extraction for the LP methods and TURN's step 1."""
    from nml.chapters.ch01_pretraining.dryrun import pretrain_in_chans
    from nml.chapters.ch04_turn.run import FFT_METHODS
    from nml.data.catalog import dataset_sizes
    from nml.report.reference import paper_table

    t = params.turn
    table1 = paper_table("turn_table1_cost")
    spans = f"{table1['train_time_min'].min():g}-{table1['train_time_min'].max():g} min"
    fig3a = paper_table("turn_fig3a_time").iloc[0]
    out = NotebookCost(reported=[
        f"not reported for fine-tuning (TURN Table 1 gives training from scratch on CIFAR-100 at 60% symmetric "
        f"noise, {spans} per method; Fig. 3a only a ratio: TURN's time x{fig3a['value']:g} of {fig3a['rival']}'s)"])
    if t is None or not t.enabled:
        return out
    sizes = dataset_sizes(t.dataset)
    if sizes is None:
        out.not_counted.append(f"everything: the size of {t.dataset} is not known here")
        return out
    n_train = sizes.count("train", per_class=t.max_train_per_class)
    n_test = sizes.count("test", per_class=t.max_test_per_class) or 0
    n_val = round(t.validation_fraction * n_train)
    n_fit, scored = n_train - n_val, n_val + n_test
    p = params.pretrain
    ckpt = {"model": p.model, "image_size": p.image_size, "kind": "backbone", "in_chans": pretrain_in_chans(params)}

    def model_of(name: str, size: int | None = None) -> dict:
        return ckpt if name == "checkpoint" else {"model": name, "image_size": size}

    train: dict[str, float] = {}
    extract: dict[str, float] = {}
    counts: dict[str, dict[str, int]] = {}
    for backbone, ratio, run in _runs(params).values():
        b = t.backbone(backbone)
        c = counts.setdefault(backbone, {"fft": 0, "turn": 0})
        if run["method"] in FFT_METHODS:
            epochs = (b.fft or t.fft).epochs
            train[backbone] = train.get(backbone, 0) + epochs * n_fit
            c["fft"] += 1
        else:
            epochs = run.get("epochs_fft", t.turn.epochs_fft)
            cleansing = run.get("cleansing", "every")
            kept = n_fit if cleansing == "none" else (1.0 - ratio) * n_fit
            train[backbone] = train.get(backbone, 0) + epochs * kept
            loss_passes = {"every": epochs, "once": 1, "none": 0}[cleansing]
            extract[backbone] = extract.get(backbone, 0) + loss_passes * n_fit + (n_fit if run.get("timed_alone") else 0)
            c["turn"] += 1
        extract[backbone] = extract.get(backbone, 0) + epochs * scored
    frozen = [m for m in t.methods if m not in FFT_METHODS]
    for b in t.backbones:
        if frozen:
            extract[b.name] = extract.get(b.name, 0) + n_train + n_test + (t.two_networks.views - 1) * n_train
        c = counts.get(b.name, {"fft": 0, "turn": 0})
        if b.name in train:
            out.workloads.append(Workload(
                f"{b.name}: {c['fft']} FFT + {c['turn']} TURN runs on {n_fit:,} images (TURN: the clean share)",
                images=train[b.name], mode="train", role="04 fine-tuning", **model_of(b.name, b.image_size)))
        if extract.get(b.name):
            out.workloads.append(Workload(
                f"{b.name}: features + per-epoch scoring of {scored:,} images + TURN's loss passes",
                images=extract[b.name], mode="extract", role="04 fine-tuning", **model_of(b.name, b.image_size)))
    if t.timing is not None and t.timing.enabled:
        tc = t.timing
        b = t.backbone(tc.backbone)
        out.workloads.append(Workload(
            f"T4 timing: DivideMix-LP and UNICON-LP, {tc.epochs} epochs x ~{t.two_networks.views} encoder passes "
            f"x {n_fit:,} images (approx.)", images=2 * len(t.seeds) * tc.epochs * t.two_networks.views * n_fit,
            mode="extract", role="04 fine-tuning", **model_of(b.name, b.image_size)))
    for cand in t.regime.candidates:
        cs = dataset_sizes(cand.dataset)
        if cs is None:
            out.not_counted.append(f"regime candidate {cand.dataset}: size not known here")
            continue
        out.workloads.append(Workload(
            f"regime: clean LP features of {cand.dataset} on {cand.backbone}", images=(cs.train or 0) + (cs.test or 0),
            mode="extract", role="04 regime", **model_of(cand.backbone, cand.image_size)))
    out.not_counted += [
        "LP / DivideMix-LP / UNICON-LP / TURN step-1 fits on cached features (negligible next to the encoder passes)",
        "TURN's clean subset is taken as (1 - noise ratio) of the training images; "
        "t-SNE reads Table 2's CE-FFT runs"]
    return out
