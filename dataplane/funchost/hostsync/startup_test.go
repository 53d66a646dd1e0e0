package hostsync

import (
	"strings"
	"testing"
)

func TestStartupTracker(t *testing.T) {
	var s startupTracker
	if err := s.synced(); err == nil || !strings.Contains(err.Error(), "not been listed") {
		t.Fatalf("before the listing: %v", err)
	}
	s.seen("ns/early") // reconciled before the listing ran
	s.start([]string{"ns/early", "ns/a", "ns/b"})
	if err := s.synced(); err == nil || !strings.Contains(err.Error(), "2 Functions not tried yet") {
		t.Fatalf("after the listing: %v", err)
	}
	s.seen("ns/a")
	s.seen("ns/other") // created after the start: not waited for
	if err := s.synced(); err == nil || !strings.Contains(err.Error(), "ns/b") {
		t.Fatalf("one left: %v", err)
	}
	s.seen("ns/b")
	if err := s.synced(); err != nil {
		t.Fatalf("all tried: %v", err)
	}
}
