"""Scale-out: datasets cut into fragments, run as tasks on a process pool or Dask, with retries."""
