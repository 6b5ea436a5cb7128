"""Tamper-evident audit trail (issue 14): one RFC 6962 Merkle log per tenant, leaves in ascending event id order,
signed checkpoints, inclusion and consistency proofs served from stored hash tiles, exports with proofs.

Modules: `tree` (hashing, proofs, tiles), `leaves` (canonical leaf and checkpoint bytes), `signing` (KMS ES256),
`store` (IntegrityTable), `seal` (the sealer), `proofs` (what the API answers), `export` (exports with proofs);
`verify` (offline/online verification) belongs to the verifier."""
