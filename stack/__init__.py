"""``make stack``: a two-host Warmline deployment on one machine, on loopback, for anyone to start.

What runs (each its own process, stopped together):

    redis-server            the shared call state (WARMLINE_STATE_URL) and the deployment's leases
    gcp-storage-emulator    the GCS stand-in: bucket ``warmline-clips`` (the public clip store) and
                            bucket ``warmline-events`` (the private events store, WARMLINE_EVENTS_STORE)
    host-a, host-b          gunicorn, production settings, own WARMLINE_HOST_ID and data directory
    balancer                round robin over the hosts (in the stack's own process); the public URL
    scheduler               ``flask precompute schedule --now``: the deployment's one scheduler

A development tool, like ``simulator/``: nothing in the product imports it. It is its own small
package rather than a simulator command because it is about *running* Warmline the way it is
deployed (docs/deploy.md walks through the same pieces), not about playing Twilio's part; the
simulator places calls on it (``python -m simulator demo --url <balancer>``).
"""
