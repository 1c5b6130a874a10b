"""Authentication of the HTTP API: scoped bearer tokens, stored hashed.

* :mod:`.tokens` — creating, listing, revoking and verifying tokens
  (``$DOT_PIOREACTOR/storage/api_tokens.json``, SHA-256 hashes only);
* :mod:`.scopes` — ``read`` < ``control`` < ``admin`` and which one an operation needs;
* :mod:`.client` — the cluster token a unit sends when it calls another unit.
"""
