"""What a Dask ``LocalCluster``'s forkserver imports before it forks the cluster's workers
(``handoff.sweeps._local_cluster``): importing this module pays, once, what every point's build pays
on first use in a process (``handoff.worker.warm_up``), so each worker starts with it done."""

import distributed  # noqa: F401 -- the worker's own modules

from handoff import sweeps  # noqa: F401 -- the task's module
from handoff.worker import warm_up

warm_up()
