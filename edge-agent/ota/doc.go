// Package ota is the device side of Cairn's A/B firmware updates (in the
// spirit of Mender or RAUC). The edge-agent calls Manager.Boot once at start
// and Manager.Handle whenever the OTA assignment in the device twin
// (protocol.OTAKey) changes; every protocol.FirmwareState the Manager
// produces is handed to Config.Report, which the agent publishes under
// protocol.FirmwareStatusKey.
//
// # Slots
//
// The device has two slots, "A" and "B", simulated as directories
// <Dir>/slots/A and <Dir>/slots/B holding the firmware bytes (image) and
// meta.json {version, sha256, size}. A slot without meta.json holds the
// factory image; it is reported with Config.InitialVersion and the SHA-256 of
// its image file.
//
// # Install
//
// An OTAInstall assignment is resolved through Config.Resolver, which
// verifies the repository's signed (TUF) metadata and is the only source of
// the target's length and SHA-256. Downgrades (lower semver precedence than
// the running version) are refused. When the running image's SHA-256 is
// known, a binary delta (dataplane/ota/delta) is tried first from
// <repository>/deltas/<running sha256>/<target sha256>; if it is missing,
// not smaller than the image, or corrupted, the full image is downloaded from
// <repository>/targets/<target>, resuming a partial download with an HTTP
// Range request. Length and SHA-256 are verified before the inactive slot is
// touched; the image is then written into the inactive slot, the bootloader
// is asked to try that slot once at the next boot, and the device reboots.
//
// After the reboot, Boot finds the bootloader on a trial boot, runs
// Config.HealthCheck and commits the slot when it passes. When it fails, the
// slot is not committed and the device reboots, so the bootloader falls back
// to the previous slot; a trial that never commits (power loss, crash) falls
// back the same way, and Boot reports RolledBack.
//
// The job (assignment, phase, message, previous slot) is persisted in
// <Dir>/job.json, so Handle is idempotent and resumes after restarts.
//
// # Bootloaders
//
// FileBootloader simulates a "tryboot" bootloader (Raspberry Pi tryboot,
// U-Boot bootcount) with a state file. ExecBootloader is the hook for real
// hardware: it runs an external command
//
//	COMMAND booted           print the BootInfo of this boot as JSON:
//	                         {"slot":"B","trial":true,"fellBack":false,"failedSlot":""}
//	COMMAND try-boot SLOT    boot SLOT once at the next boot
//	COMMAND commit SLOT      make SLOT the permanent slot
//	COMMAND reboot           restart the device
//
// Typical implementations of that command:
//
//   - U-Boot (bootcount): try-boot sets the alternate slot as boot slot and
//     arms the counter: `fw_setenv boot_slot B upgrade_available 1
//     bootcount 0` (bootlimit=1, altbootcmd boots the other slot once
//     bootcount exceeds bootlimit). commit runs `fw_setenv
//     upgrade_available 0 bootcount 0`. booted reads `fw_printenv boot_slot
//     upgrade_available` (trial = upgrade_available=1) and reports fellBack
//     when altbootcmd ran (e.g. it sets a `fell_back` variable that booted
//     reads and clears).
//   - RAUC: try-boot is `rauc status mark-active other` (RAUC installs
//     normally do this themselves), commit is `rauc status mark-good`
//     (booted), booted derives the slot from `rauc status --output-format=json`
//     (booted slot, boot status "good"/"bad"), and the bootloader backend's
//     attempt counter provides the fallback.
//   - GRUB: try-boot is `grub-editenv /boot/grub/grubenv set
//     next_entry=slot-B` (a one-shot entry, cleared by grub.cfg on use),
//     commit is `grub-editenv /boot/grub/grubenv set saved_entry=slot-B`,
//     booted compares the running entry with saved_entry (trial when they
//     differ; fellBack when a pending next_entry was not committed and the
//     saved entry booted again).
//
// reboot is `systemctl reboot` (or `reboot`) in all three cases.
package ota
