package tuf

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

// rotation rotates the root of f's repository from the keys cur to new root
// and timestamp keys and publishes with them, without serving the result
// yet. It returns the new signers.
func (f *fixture) rotation(cur Signers) Signers {
	f.t.Helper()
	next := cur
	next.Root = []*PrivateKey{mustKey(f.t)}
	next.Timestamp = []*PrivateKey{mustKey(f.t)}
	if err := f.repo.RotateRoot(configFor(next), cur.Root, next.Root, f.now); err != nil {
		f.t.Fatal(err)
	}
	if err := f.repo.Publish(next, f.now); err != nil {
		f.t.Fatal(err)
	}
	return next
}

// TestUpdateRefusesAttacks plays one attack per case against a client that
// trusts release 1.4.2 and checks that the attack is refused with the right
// error, that nothing but verified metadata reached the store, and that the
// client still serves the trusted target.
func TestUpdateRefusesAttacks(t *testing.T) {
	tests := []struct {
		name   string
		attack func(f *fixture)
		want   error
		// accepted lists files that legitimately verify before the
		// attack is detected, and are thus saved (spec §5.4.5, §5.5.7).
		accepted []string
	}{{
		name:   "timestamp rollback",
		attack: func(f *fixture) { f.served[TimestampFile] = f.old[TimestampFile] },
		want:   ErrRollback,
	}, {
		name: "replay of old snapshot and its timestamp",
		attack: func(f *fixture) {
			f.served[SnapshotFile] = f.old[SnapshotFile]
			f.served[TimestampFile] = f.old[TimestampFile]
		},
		want: ErrRollback,
	}, {
		name: "snapshot rollback: new timestamp lists old snapshot",
		attack: func(f *fixture) {
			f.served[SnapshotFile] = f.old[SnapshotFile]
			f.rechainTimestamp()
		},
		want: ErrRollback,
	}, {
		name: "targets rollback: new snapshot lists old targets",
		attack: func(f *fixture) {
			f.served[TargetsFile] = f.old[TargetsFile]
			f.rechainSnapshot()
			f.rechainTimestamp()
		},
		want:     ErrRollback,
		accepted: []string{TimestampFile},
	}, {
		name: "snapshot drops targets.json",
		attack: func(f *fixture) {
			f.bump(SnapshotFile, func(m map[string]any) { m["meta"] = map[string]any{} }, f.keys.Snapshot...)
			f.rechainTimestamp()
		},
		want:     ErrRollback,
		accepted: []string{TimestampFile},
	}, {
		name:   "expired timestamp",
		attack: func(f *fixture) { f.bump(TimestampFile, expiresAt(t0.Add(-time.Hour)), f.keys.Timestamp...) },
		want:   ErrExpired,
	}, {
		name:   "freeze: trusted timestamp expires, nothing new served",
		attack: func(f *fixture) { f.now = t0.Add(48 * time.Hour) },
		want:   ErrExpired,
	}, {
		name: "expired snapshot",
		attack: func(f *fixture) {
			f.bump(SnapshotFile, expiresAt(t0.Add(-time.Hour)), f.keys.Snapshot...)
			f.rechainTimestamp()
		},
		want:     ErrExpired,
		accepted: []string{TimestampFile},
	}, {
		name: "expired targets",
		attack: func(f *fixture) {
			f.bump(TargetsFile, expiresAt(t0.Add(-time.Hour)), f.keys.Targets...)
			f.rechainSnapshot()
			f.rechainTimestamp()
		},
		want:     ErrExpired,
		accepted: []string{TimestampFile, SnapshotFile},
	}, {
		name:   "expired root",
		attack: func(f *fixture) { f.now = t0.Add(2 * 365 * 24 * time.Hour) },
		want:   ErrExpired,
	}, {
		name:   "timestamp signed by an untrusted key",
		attack: func(f *fixture) { f.bump(TimestampFile, nil, mustKey(f.t)) },
		want:   ErrSignatures,
	}, {
		name: "timestamp changed after signing",
		attack: func(f *fixture) {
			f.served[TimestampFile] = tamper(f.t, f.served[TimestampFile], func(m map[string]any, _ []Signature) {
				m["version"] = 100
			})
		},
		want: ErrSignatures,
	}, {
		name: "unknown field added after signing",
		attack: func(f *fixture) {
			f.bump(TimestampFile, nil, f.keys.Timestamp...)
			f.served[TimestampFile] = tamper(f.t, f.served[TimestampFile], func(m map[string]any, _ []Signature) {
				m["x-note"] = "not signed"
			})
		},
		want: ErrSignatures,
	}, {
		name: "signature bytes altered",
		attack: func(f *fixture) {
			f.bump(TimestampFile, nil, f.keys.Timestamp...)
			f.served[TimestampFile] = tamper(f.t, f.served[TimestampFile], func(_ map[string]any, sigs []Signature) {
				sigs[0].Sig = strings.Repeat("0", 8) + sigs[0].Sig[8:]
			})
		},
		want: ErrSignatures,
	}, {
		name: "targets threshold 2 signed by one key",
		attack: func(f *fixture) {
			f.bump(TargetsFile, nil, f.keys.Targets[0])
			f.rechainSnapshot()
			f.rechainTimestamp()
		},
		want:     ErrSignatures,
		accepted: []string{TimestampFile, SnapshotFile},
	}, {
		name: "targets signed twice by the same key",
		attack: func(f *fixture) {
			f.bump(TargetsFile, nil, f.keys.Targets[0], f.keys.Targets[0])
			f.rechainSnapshot()
			f.rechainTimestamp()
		},
		want:     ErrSignatures,
		accepted: []string{TimestampFile, SnapshotFile},
	}, {
		name: "targets signed by the snapshot key",
		attack: func(f *fixture) {
			f.bump(TargetsFile, nil, f.keys.Snapshot[0], f.keys.Timestamp[0])
			f.rechainSnapshot()
			f.rechainTimestamp()
		},
		want:     ErrSignatures,
		accepted: []string{TimestampFile, SnapshotFile},
	}, {
		name: "mix-and-match: older targets.json served with a new release",
		attack: func(f *fixture) {
			f.release("firmware/gw2-1.4.3.bin", "1.4.3")
			f.serveRepo()
			f.served[TargetsFile] = f.old[TargetsFile]
		},
		want:     ErrMixAndMatch,
		accepted: []string{TimestampFile, SnapshotFile},
	}, {
		name: "mix-and-match: targets version differs from snapshot (no hash)",
		attack: func(f *fixture) {
			f.bump(TargetsFile, nil, f.keys.Targets...)
			f.bump(SnapshotFile, setMeta(TargetsFile, MetaFile{Version: 9}), f.keys.Snapshot...)
			f.rechainTimestamp()
		},
		want:     ErrMixAndMatch,
		accepted: []string{TimestampFile, SnapshotFile},
	}, {
		name: "snapshot does not match the timestamp's hash",
		attack: func(f *fixture) {
			f.bump(SnapshotFile, nil, f.keys.Snapshot...)
			f.rechainTimestamp()
			// Same version, different content.
			m, _ := signedOf(f.t, f.served[SnapshotFile])
			m["expires"] = t0.Add(time.Hour).Format(time.RFC3339)
			f.served[SnapshotFile] = sign(f.t, m, f.keys.Snapshot...)
		},
		want:     ErrMixAndMatch,
		accepted: []string{TimestampFile},
	}, {
		name: "snapshot version differs from timestamp (no hash)",
		attack: func(f *fixture) {
			f.bump(SnapshotFile, nil, f.keys.Snapshot...)
			f.bump(TimestampFile, setMeta(SnapshotFile, MetaFile{Version: 9}), f.keys.Timestamp...)
		},
		want:     ErrMixAndMatch,
		accepted: []string{TimestampFile},
	}, {
		name: "new root signed only by the new root key",
		attack: func(f *fixture) {
			next := f.rotation(f.keys)
			f.serveRepo()
			f.served[RootVersionFile(2)] = keepSignatures(f.t, f.served[RootVersionFile(2)], next.Root...)
		},
		want: ErrSignatures,
	}, {
		name: "new root signed only by the old root key",
		attack: func(f *fixture) {
			f.rotation(f.keys)
			f.serveRepo()
			f.served[RootVersionFile(2)] = keepSignatures(f.t, f.served[RootVersionFile(2)], f.keys.Root...)
		},
		want: ErrSignatures,
	}, {
		name: "root version skip: 3.root.json without 2.root.json",
		attack: func(f *fixture) {
			f.rotation(f.rotation(f.keys))
			f.serveRepo()
			delete(f.served, RootVersionFile(2))
		},
		// The client never looks for 3.root.json, keeps root version 1
		// and so refuses the timestamp signed by the new key.
		want: ErrSignatures,
	}, {
		name: "root version skip: 2.root.json holds version 3",
		attack: func(f *fixture) {
			// Same root key, so only the version is wrong.
			next := f.keys
			next.Timestamp = []*PrivateKey{mustKey(f.t)}
			for range 2 {
				if err := f.repo.RotateRoot(configFor(next), f.keys.Root, f.keys.Root, f.now); err != nil {
					f.t.Fatal(err)
				}
			}
			f.serveRepo()
			f.served[RootVersionFile(2)] = f.served[RootVersionFile(3)]
			delete(f.served, RootVersionFile(3))
		},
		want: ErrInvalid,
	}, {
		name: "root rollback: 2.root.json holds version 1",
		attack: func(f *fixture) {
			f.served[RootVersionFile(2)] = f.served[RootVersionFile(1)]
		},
		want: ErrRollback,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			trusted, err := f.client.Target(newTarget)
			if err != nil {
				t.Fatal(err)
			}
			before := storeFiles(t, f.store)

			tc.attack(f)
			err = f.client.Update(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("Update() = %v, want %v", err, tc.want)
			}
			t.Logf("refused: %v", err)

			want := maps.Clone(before)
			for _, name := range tc.accepted {
				want[name] = string(f.served[name])
			}
			if got := storeFiles(t, f.store); !maps.Equal(got, want) {
				for name := range want {
					if got[name] != want[name] {
						t.Errorf("store: %s changed", name)
					}
				}
				t.Fatalf("store has %d files, want %d", len(got), len(want))
			}

			f.now = t0
			for _, c := range []*Client{f.client, f.newClient()} {
				got, err := c.Target(newTarget)
				if err != nil {
					t.Fatalf("Target after refused update: %v", err)
				}
				if got.Hashes["sha256"] != trusted.Hashes["sha256"] || got.Length != trusted.Length {
					t.Fatalf("Target() = %+v, want the trusted %+v", got, trusted)
				}
			}
			if v := f.client.RootVersion(); v != 1 {
				t.Errorf("trusted root version %d, want 1", v)
			}
		})
	}
}

func TestUpdateAcceptsNewRelease(t *testing.T) {
	f := newFixture(t)
	f.release("firmware/gw2-1.4.3.bin", "1.4.3")
	f.serveRepo()
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := f.client.Target("firmware/gw2-1.4.3.bin")
	if err != nil {
		t.Fatal(err)
	}
	fw, err := got.Firmware()
	if err != nil {
		t.Fatal(err)
	}
	if fw.Version != "1.4.3" || len(fw.Models) != 1 || fw.Models[0] != "gw2" {
		t.Errorf("Firmware() = %+v", fw)
	}
	if err := got.Verify(strings.NewReader(string(firmwareContent("1.4.3")))); err != nil {
		t.Errorf("Verify: %v", err)
	}
	// An unchanged repository updates cleanly, also after a restart.
	if err := f.newClient().Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A refreshed timestamp alone is accepted.
	if err := f.repo.RefreshTimestamp(t0.Add(time.Hour), f.keys.Timestamp...); err != nil {
		t.Fatal(err)
	}
	f.serveRepo()
	f.now = t0.Add(time.Hour)
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	all, err := f.client.Targets()
	if err != nil || len(all) != 3 {
		t.Fatalf("Targets() = %d targets, %v; want 3", len(all), err)
	}
}

func TestUpdateMissingTimestamp(t *testing.T) {
	f := newFixture(t)
	delete(f.served, TimestampFile)
	if err := f.client.Update(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update() = %v, want ErrNotFound", err)
	}
}

func TestRotateRootAccepted(t *testing.T) {
	f := newFixture(t)
	oldTimestampKey := f.keys.Timestamp[0]
	next := f.rotation(f.keys)
	f.serveRepo()
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatalf("update after rotation: %v", err)
	}
	if v := f.client.RootVersion(); v != 2 {
		t.Fatalf("trusted root version %d, want 2", v)
	}

	// The revoked timestamp key no longer counts...
	f.bump(TimestampFile, nil, oldTimestampKey)
	err := f.client.Update(context.Background())
	if !errors.Is(err, ErrSignatures) {
		t.Fatalf("timestamp by revoked key: Update() = %v, want ErrSignatures", err)
	}
	t.Logf("refused: %v", err)
	// ...the new one does.
	f.bump(TimestampFile, nil, next.Timestamp...)
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatalf("timestamp by new key: %v", err)
	}
	// A restarted client trusts the rotated root from its store.
	if v := f.newClient().RootVersion(); v != 2 {
		t.Fatalf("reloaded root version %d, want 2", v)
	}
}

// TestFastForwardRecovery: an attacker holding the timestamp key pushes the
// client to timestamp version 1000. After the repository rotates the key
// away, the client must accept the legitimate, lower version again.
func TestFastForwardRecovery(t *testing.T) {
	f := newFixture(t)
	f.bump(TimestampFile, func(m map[string]any) { m["version"] = 1000 }, f.keys.Timestamp...)
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.rotation(f.keys)
	f.serveRepo()
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatalf("update after rotating the timestamp key: %v", err)
	}
	b, err := f.store.Load(TimestampFile)
	if err != nil {
		t.Fatal(err)
	}
	if v := versionOf(t, b); v >= 1000 {
		t.Fatalf("trusted timestamp version %d, want the repository's", v)
	}
}

func TestTargetCheckVerify(t *testing.T) {
	f := newFixture(t)
	tf, err := f.client.Target(newTarget)
	if err != nil {
		t.Fatal(err)
	}
	content := string(firmwareContent("1.4.2"))
	n, sum, _ := HashTarget(strings.NewReader(content))
	tests := []struct {
		name    string
		content string
		want    error
	}{
		{"genuine", content, nil},
		{"hash mismatch", strings.ToUpper(content[:1]) + content[1:], ErrMismatch},
		{"too short", content[1:], ErrMismatch},
		{"too long", content + "x", ErrMismatch},
		{"empty", "", ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tf.Verify(strings.NewReader(tc.content))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify() = %v, want %v", err, tc.want)
			}
		})
	}
	if err := tf.Check(n, sum); err != nil {
		t.Errorf("Check(genuine) = %v", err)
	}
	if err := tf.Check(n+1, sum); !errors.Is(err, ErrMismatch) {
		t.Errorf("Check(wrong length) = %v, want ErrMismatch", err)
	}
	if err := tf.Check(n, strings.Repeat("ab", 32)); !errors.Is(err, ErrMismatch) {
		t.Errorf("Check(wrong hash) = %v, want ErrMismatch", err)
	}
	if _, err := f.client.Target("firmware/none.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Target(unknown) = %v, want ErrNotFound", err)
	}
}

func TestBootstrap(t *testing.T) {
	f := newFixture(t)
	stranger := mustKey(t)

	// A root whose signature is not by its own root key.
	m, _ := signedOf(t, f.served[RootVersionFile(1)])
	forged := sign(t, m, stranger)
	if err := Bootstrap(&MemoryStore{}, forged); !errors.Is(err, ErrSignatures) {
		t.Fatalf("Bootstrap(forged) = %v, want ErrSignatures", err)
	}
	if _, err := NewClient(&MemoryStore{}, f.served, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("NewClient without root = %v, want ErrNotFound", err)
	}

	// An existing trust anchor is kept.
	f.rotation(f.keys)
	f.serveRepo()
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := Bootstrap(f.store, f.served[RootVersionFile(1)]); err != nil {
		t.Fatal(err)
	}
	if v := f.newClient().RootVersion(); v != 2 {
		t.Fatalf("root version after re-bootstrap %d, want 2", v)
	}

	// The controller's in-memory client.
	store := &MemoryStore{}
	if err := Bootstrap(store, f.served[RootVersionFile(1)]); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(store, f.served, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Target(newTarget); err != nil {
		t.Fatal(err)
	}
}

// TestSignaturesCountKeysOnce: a key listed under two key IDs still counts
// as one signer.
func TestSignaturesCountKeysOnce(t *testing.T) {
	k := mustKey(t)
	pub := k.Public()
	root := &Root{
		Keys:  map[string]Key{"id-a": pub, "id-b": pub},
		Roles: map[string]Role{RoleTargets: {KeyIDs: []string{"id-a", "id-b"}, Threshold: 2}},
	}
	b := sign(t, map[string]any{"_type": "targets"}, k)
	signed, sigs, err := readEnvelope("targets.json", b)
	if err != nil {
		t.Fatal(err)
	}
	sigs = []Signature{{KeyID: "id-a", Sig: sigs[0].Sig}, {KeyID: "id-b", Sig: sigs[0].Sig}}
	err = verifySignatures("targets.json", root, RoleTargets, signed, sigs, "")
	if !errors.Is(err, ErrSignatures) {
		t.Fatalf("verifySignatures = %v, want ErrSignatures", err)
	}
	if want := "targets.json: 1 of the required 2 signatures verify"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestErrorMessages(t *testing.T) {
	f := newFixture(t)
	current := f.served[TimestampFile]
	f.served[TimestampFile] = f.old[TimestampFile]
	err := f.client.Update(context.Background())
	if want := "timestamp.json version 2 is older than the trusted version 3 (rollback attack?)"; err == nil || err.Error() != want {
		t.Errorf("rollback: %v, want %q", err, want)
	}
	f.served[TimestampFile] = f.served[SnapshotFile]
	f.bump(TimestampFile, nil) // no signatures
	err = f.client.Update(context.Background())
	if want := "timestamp.json: 0 of the required 1 signatures verify"; err == nil || err.Error() != want {
		t.Errorf("signatures: %v, want %q", err, want)
	}
	f.served[TimestampFile] = current
	f.now = t0.Add(48 * time.Hour)
	err = f.client.Update(context.Background())
	if want := "timestamp.json expired at 2026-11-21T10:00:00Z"; err == nil || err.Error() != want {
		t.Errorf("expired: %v, want %q", err, want)
	}
}

// TestUnknownFieldsSigned: fields this package does not know are kept and
// covered by the signature.
func TestUnknownFieldsSigned(t *testing.T) {
	f := newFixture(t)
	f.bump(TimestampFile, func(m map[string]any) { m["x-cairn-note"] = "<b>&</b>" }, f.keys.Timestamp...)
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := f.store.Load(TimestampFile)
	var env struct{ Signed map[string]json.RawMessage }
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	if _, ok := env.Signed["x-cairn-note"]; !ok {
		t.Fatal("unknown field not stored")
	}
}

// rotateRoles rotates the keys of roles (root keys stay) and publishes.
func (f *fixture) rotateRoles(roles ...string) Signers {
	f.t.Helper()
	next := f.keys
	for _, role := range roles {
		switch role {
		case RoleTargets:
			next.Targets = []*PrivateKey{mustKey(f.t), mustKey(f.t)}
		case RoleSnapshot:
			next.Snapshot = []*PrivateKey{mustKey(f.t)}
		case RoleTimestamp:
			next.Timestamp = []*PrivateKey{mustKey(f.t)}
		}
	}
	if err := f.repo.RotateRoot(configFor(next), f.keys.Root, f.keys.Root, f.now); err != nil {
		f.t.Fatal(err)
	}
	if err := f.repo.Publish(next, f.now); err != nil {
		f.t.Fatal(err)
	}
	return next
}

// TestFastForwardRecoveryByRole: after an attacker holding the online keys
// inflated a role's version, rotating the compromised keys lets the client
// accept the repository's lower versions again.
func TestFastForwardRecoveryByRole(t *testing.T) {
	tests := []struct {
		role    string
		rotate  []string
		inflate func(f *fixture)
	}{{
		role:   RoleSnapshot,
		rotate: []string{RoleSnapshot},
		inflate: func(f *fixture) {
			f.bump(SnapshotFile, func(m map[string]any) {
				m["version"] = 1000
				m["meta"] = map[string]any{TargetsFile: metaOf(f.t, f.served[TargetsFile])}
			}, f.keys.Snapshot...)
			f.rechainTimestamp()
		},
	}, {
		role:   RoleTargets,
		rotate: []string{RoleTargets, RoleSnapshot, RoleTimestamp},
		inflate: func(f *fixture) {
			f.bump(TargetsFile, func(m map[string]any) { m["version"] = 1000 }, f.keys.Targets...)
			f.rechainSnapshot()
			f.rechainTimestamp()
		},
	}}
	for _, tc := range tests {
		t.Run(tc.role, func(t *testing.T) {
			f := newFixture(t)
			tc.inflate(f)
			if err := f.client.Update(context.Background()); err != nil {
				t.Fatal(err)
			}
			stale := f.keys
			next := f.rotateRoles(tc.rotate...)
			f.serveRepo()
			if err := f.client.Update(context.Background()); err != nil {
				t.Fatalf("update after rotating the %s key: %v", tc.role, err)
			}
			if _, err := f.client.Target(newTarget); err != nil {
				t.Fatal(err)
			}
			// The rotated-away key is no longer trusted.
			f.keys = stale
			switch tc.role {
			case RoleSnapshot:
				f.rechainSnapshot()
				f.keys = next
				f.rechainTimestamp()
			case RoleTargets:
				f.bump(TargetsFile, nil, stale.Targets...)
				f.keys = next
				f.rechainSnapshot()
				f.rechainTimestamp()
			}
			if err := f.client.Update(context.Background()); !errors.Is(err, ErrSignatures) {
				t.Fatalf("metadata by the old %s key: Update() = %v, want ErrSignatures", tc.role, err)
			}
		})
	}
}
