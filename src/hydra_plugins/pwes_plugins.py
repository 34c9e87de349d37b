"""pwes's Hydra plugins. Hydra instantiates sweepers and launchers only from the ``hydra_plugins``
package, so these thin subclasses name pwes's classes there (conf/hydra/sweeper/pwes.yaml,
conf/hydra/launcher/slurm.yaml). What they do: pwes.sweep (pooling that survives a failed job)
and pwes.cluster (the SLURM launcher that waits for every job)."""

from pwes.cluster import FoldJobSlurmLauncher
from pwes.sweep import PoolingSweeperBase


class PoolingSweeper(PoolingSweeperBase):
    """Hydra's basic sweeper that pools a fold sweep even when jobs failed (pwes.sweep)."""


class SlurmLauncher(FoldJobSlurmLauncher):
    """submitit's SLURM launcher that waits for every job (pwes.cluster)."""
