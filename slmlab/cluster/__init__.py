"""The Ray executor: the same runs on a cluster (`--executor ray`, `pip install 'slmlab[ray]'`).

- `connect`: joins (or starts) a Ray cluster and says what it holds; a missing extra is one line.
- `replicas`: generator replicas, one per GPU or per node's cores, each a Ray actor that loads its
  model once; a Generator to the pipeline, so any engine can be a replica.
- `sandbox`: sandbox workers on every node, an Executor to the sandbox judge.
- `trials`: the trials of a sweep as Ray tasks with resource requests.

The driver stays the store's single writer: every result comes back to it and is stored there, so
a run on a cluster resumes, and survives a lost worker or node, as a local one does.
"""
