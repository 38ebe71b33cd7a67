"""scikit-learn estimators, by the problem they solve: ``frozen`` (tuners on frozen features:
LP, MLP, NMTune) and ``noisy_labels`` (fine-tuning under noisy labels: TURN and its baselines).

Both families derive from one base, :class:`nml.estimators._base.NMLClassifier`, which gives them
scikit-learn's contract (declarative parameter validation, tags, standard input errors)."""
