package edgehub

import (
	"strconv"
	"strings"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

// sessionStore is mochi's bbolt storage hook with one fix: in v2.7.9 its
// OnQosPublish stores in-flight messages without their packet id (the
// badger and pebble hooks keep it), so after a restart the broker refuses
// to resend them ("protocol violation: missing packet id"). The id is also
// the last part of the storage key, "<type>_<client>:<packet id>", where
// it is read back.
type sessionStore struct {
	*bolt.Hook
}

// StoredInflightMessages returns the stored in-flight messages with their
// packet ids.
func (s sessionStore) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := s.Hook.StoredInflightMessages()
	for i := range msgs {
		if msgs[i].PacketID != 0 {
			continue
		}
		if id, perr := strconv.ParseUint(msgs[i].ID[strings.LastIndexByte(msgs[i].ID, ':')+1:], 10, 16); perr == nil {
			msgs[i].PacketID = uint16(id)
		}
	}
	return msgs, err
}
