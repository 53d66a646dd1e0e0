package protocol

import "time"

// Over-the-air firmware updates travel in the twin: the hub writes the
// device's assignment under OTAKey (from the EdgeDevice's OTA annotation,
// set by the Firmware controller), and the device reports progress under
// FirmwareStatusKey, which the hub shows in the EdgeDevice's
// status.firmware. The bytes and the TUF metadata come over HTTP from the
// manager's OTA server (OTAAssignment.Repository), never over MQTT.
const (
	// OTAKey holds the device's OTAAssignment (hub-written).
	OTAKey = ConfigPrefix + "ota"
	// StatusPrefix starts keys only the device writes and the hub maps
	// into the EdgeDevice status (not into status.reported).
	StatusPrefix = "status/"
	// FirmwareStatusKey holds the device's FirmwareState.
	FirmwareStatusKey = StatusPrefix + "firmware"
)

// OTA actions.
const (
	// OTAInstall installs Version into the inactive slot and boots it.
	OTAInstall = "Install"
	// OTARollback boots the previous slot again (the wave it was updated
	// in was halted).
	OTARollback = "Rollback"
)

// OTAAssignment tells a device what to install.
type OTAAssignment struct {
	// Rollout identifies the job: "<firmware name>:<first 12 hex of the
	// image sha256>". The device echoes it in FirmwareState.
	Rollout string `json:"rollout"`
	// Action is OTAInstall or OTARollback.
	Action string `json:"action"`
	// Version is the firmware version (semver).
	Version string `json:"version"`
	// Target is the TUF target path; the device takes length and hashes
	// only from verified TUF metadata, never from this message.
	Target string `json:"target"`
	// Repository is the base URL of the OTA server for this device's
	// namespace and repository: metadata under metadata/, images under
	// targets/, deltas under deltas/<from sha256>/<to sha256>.
	Repository string `json:"repository"`
}

// Firmware update phases a device reports.
const (
	PhaseIdle        = "Idle"
	PhaseDownloading = "Downloading"
	PhaseInstalling  = "Installing"
	PhaseRebooting   = "Rebooting"
	PhaseVerifying   = "Verifying"
	PhaseSucceeded   = "Succeeded"
	PhaseFailed      = "Failed"
	PhaseRolledBack  = "RolledBack"
)

// FirmwareState is what a device reports about its firmware.
type FirmwareState struct {
	// Version running now, and the slot (A or B) it booted from.
	Version string `json:"version,omitempty"`
	Slot    string `json:"slot,omitempty"`
	// SHA256 of the running image (the base for deltas).
	SHA256 string `json:"sha256,omitempty"`
	// Rollout is the assignment this state answers ("" before any).
	Rollout string `json:"rollout,omitempty"`
	// Action of that assignment.
	Action string `json:"action,omitempty"`
	// Phase of that assignment.
	Phase string `json:"phase,omitempty"`
	// Progress of the download in percent.
	Progress int32 `json:"progress,omitempty"`
	// Delta tells whether the image came as a binary delta.
	Delta bool `json:"delta,omitempty"`
	// Message says why a phase is Failed or RolledBack.
	Message string `json:"message,omitempty"`
	// Time of the last phase change.
	Time time.Time `json:"time"`
}
