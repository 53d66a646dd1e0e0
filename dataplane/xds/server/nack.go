package server

import (
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// nackAwareCache stops the stock snapshot cache from re-sending a rejected
// configuration on every NACK (go-control-plane #962: thousands of times a
// second). A NACK carries the last good version, which differs from the
// snapshot's, so the cache would answer at once with the same rejected
// resources. Presenting the NACKed request as being at the current version
// makes the watch wait for the next snapshot instead.
type nackAwareCache struct {
	cachev3.SnapshotCache
}

func (c *nackAwareCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	if req.GetErrorDetail() != nil {
		if snap, err := c.GetSnapshot(c.nodeID(req)); err == nil {
			req = proto.Clone(req).(*cachev3.Request)
			req.VersionInfo = snap.GetVersion(req.GetTypeUrl())
		}
	}
	return c.SnapshotCache.CreateWatch(req, sub, out)
}

func (c *nackAwareCache) nodeID(req *cachev3.Request) string {
	return cachev3.IDHash{}.ID(req.GetNode())
}
