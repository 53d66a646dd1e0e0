// Package tuf implements signed metadata for firmware OTA updates in the
// style of The Update Framework (TUF specification 1.0): the top-level roles
// root, targets, snapshot and timestamp, without delegations or consistent
// snapshots.
//
// The repository side (Repository) creates and signs the metadata; it backs
// `cairn firmware sign/publish`. The client side (Client) verifies it
// following the TUF client workflow (spec §5.3–5.6): an edge device keeps its
// trusted metadata in a DirStore, the controller in a MemoryStore.
//
// A client refuses rolled-back metadata (ErrRollback), expired metadata, also
// when an attacker freezes the repository (ErrExpired), files that do not match
// the length or hash recorded for them (ErrMismatch), metadata that does not
// carry a threshold of valid signatures (ErrSignatures) and metadata from
// different repository states (ErrMixAndMatch). It accepts a rotated root
// only when a threshold of both the old and the new root keys sign it.
//
// # Format
//
// Files follow the TUF JSON shapes: an envelope
// {"signed": {...}, "signatures": [{"keyid": "...", "sig": "..."}]} whose
// ed25519 signatures cover the canonical JSON (see Canonicalize) of the raw
// "signed" value, so fields this package does not know are signed too. The
// repository publishes 1.root.json, 2.root.json, ... (the root chain),
// root.json (the latest root), targets.json, snapshot.json and timestamp.json.
package tuf
