"""Running one fit on many processes or machines: studies shared through a database
(:mod:`automed.cluster.storage`), ``automed worker`` (:mod:`automed.cluster.worker`) and
per-case work on a Dask cluster (:mod:`automed.cluster.dask_map`)."""
