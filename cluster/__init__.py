"""Ray layer of the RTFS delegation cluster: fleet-shared cache state on sharded actors.

Only this package imports Ray, and only where it runs (`actors`, `steptasks`, `raynode`,
`http` and the commands); `extension.register` adds `delegation serve`, `delegation cache
stats`, `delegation peers`, the `[delegation.cluster]` and `[delegation.federation]` tables,
the `rtfs-peer` and `ray-rtfs` provider kinds and the `run --cluster` connector without
importing it.

- `shard.CacheShard`: one partition of the shared caches (plain class; `wire` is its format,
  `shardops` its ops; `vectors` indexes the embeddings of its `l2` entries).
- `topology`: rendezvous placement of agents on shards, replicas on distinct nodes.
- `client.ShardClient`: batched, breaker-guarded access to the shards through a transport.
- `planstore.ShardedPlanStore`: the `PlanStore` facade with its near-cache; `learner.
  SharedLearner`: outcomes learned by the fleet together; `l3shared.SharedContextualCache`:
  L3 tables learned together (both ride in the plan store's batches: `companions`).
- `l2store.ShardedL2Store`: the `L2Store` facade (one request per lookup, near-cache,
  write-behind through `behind.WriteBehind`; entries encoded by `l2codec`).
- `directory.ClusterDirectory`: the fleet's topology, restart counts, metrics reports and
  the arbiters' adverts.
- `arbiter.Arbiter`: one fleet role's delegation engine serving peer calls;
  `peers.PeerProvider`: a peer arbiter as a provider (`rtfs-peer`; `peers_wire` is what
  peers say); `federation.Federation`: which peers may serve a call that cannot run here.
- `actors`: the plain classes as Ray actors, Ray's errors as ours (`errors`);
  `peers_ray`: the transport between arbiter actors.
- `connect`, `serve`, `cachecmd`, `peerscmd`, `metrics`, `config`, `stats`: the edge.
- Remote steps: `execute.StepRunner` runs one plan step for a caller from outside this node
  (plain class; `steps` is its request, reply and errors); `steptasks` runs steps as Ray
  tasks on the node a resource chooses, under the fleet's step policy; `http` serves
  `POST /execute` with Ray Serve; `rayrtfs` is the `ray-rtfs` provider kind
  (`remote-rtfs.execute` inside a fleet).

See DESIGN.md ("Cluster") and the README ("The fleet on one machine").
"""
