"""Ray layer of the RTFS delegation cluster: fleet-shared cache state on sharded actors.

Only this package imports Ray, and only where it runs (`actors`, `steptasks`, `raynode`, `http`
and the commands);
`extension.register` adds `delegation serve`, `delegation cache stats`, the
`[delegation.cluster]` table and the `run --cluster` connector without importing it.

- `shard.CacheShard`: one partition of the shared caches (plain class; `wire` is its format).
- `topology`: rendezvous placement of agents on shards, replicas on distinct nodes.
- `client.ShardClient`: batched, breaker-guarded access to the shards through a transport.
- `planstore.ShardedPlanStore`: the `PlanStore` facade with its near-cache; `learner.
  SharedLearner`: outcomes learned by the fleet together.
- `directory.ClusterDirectory`: the fleet's topology, restart counts and metrics reports.
- `actors`: the plain classes as Ray actors, Ray's errors as ours (`errors`).
- `connect`, `serve`, `cachecmd`, `metrics`, `config`, `stats`: the edge.
- Remote steps: `execute.StepRunner` runs one plan step for a caller from outside this node
  (plain class; `steps` is its request, reply and errors); `steptasks` runs steps as Ray tasks on the node a resource chooses, under
  the fleet's step policy; `http` serves `POST /execute` with Ray Serve; `rayrtfs` is the
  `ray-rtfs` provider kind (`remote-rtfs.execute` inside a fleet).

See DESIGN.md ("Cluster") and the README ("The fleet on one machine").
"""
