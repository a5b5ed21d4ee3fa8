"""Adapters with one small interface per MMoE implementation.

Each module (``deepctr``, ``rechub``, ``plain_torch``, ``product``) exposes

    NAME: str
    available() -> str | None                 # None if importable, else why not
    train_census(split: CensusSplit, epochs, batch_size, lr, device, seed) -> dict(
        prep_seconds, train_seconds, samples_per_second, auc_income, auc_marital, n_train, n_val)
    make_step(in_features, batch_size, device, seed) -> callable   # one fwd+bwd+optimiser step

and uses the implementation's *own* training API and customary preprocessing.
"""
