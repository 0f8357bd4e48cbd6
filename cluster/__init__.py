"""Ray layer of the RTFS delegation cluster (cache-shard actors, arbiters, federation).

Only this package imports Ray. It is not built yet: the embedded engine in `delegation`
runs without it. See DESIGN.md, "Cluster (Ray)".
"""
