package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// mosquittoBroker is a Debian mosquitto 2 with the dynamic security plugin,
// on loopback, for the edge hub's external-broker mode.
type mosquittoBroker struct {
	addr                string
	adminUser, adminPwd string
}

// dynsecPlugin is where Debian installs the plugin.
var dynsecPlugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

func startMosquitto(t *testing.T) *mosquittoBroker {
	t.Helper()
	bin := lookPath("mosquitto", "/usr/sbin/mosquitto")
	ctl := lookPath("mosquitto_ctrl", "/usr/bin/mosquitto_ctrl")
	if bin == "" || ctl == "" {
		t.Skip("mosquitto is not installed (Debian package mosquitto; .ci/run installs it)")
	}
	if _, err := os.Stat(dynsecPlugin); err != nil {
		t.Skipf("mosquitto's dynamic security plugin is missing: %v", err)
	}
	dir := t.TempDir()
	b := &mosquittoBroker{adminUser: "cairn-admin", adminPwd: "admin-" + fmt.Sprint(time.Now().UnixNano())}
	if out, err := exec.Command(ctl, "dynsec", "init", filepath.Join(dir, "dynsec.json"), b.adminUser, b.adminPwd).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_ctrl dynsec init: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	ln.Close()
	port := b.addr[len("127.0.0.1:"):]
	conf := fmt.Sprintf(`listener %s 127.0.0.1
allow_anonymous false
# Stay root (the default drops to user mosquitto, which cannot read the
# test's private temp directory).
user root
per_listener_settings false
persistence false
max_packet_size %d
plugin %s
plugin_opt_config_file %s
log_dest stdout
`, port, 260<<10, dynsecPlugin, filepath.Join(dir, "dynsec.json"))
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "mosquitto.conf"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", logs.String())
		}
	})
	eventually(t, 10*time.Second, func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", b.addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return b
}

func lookPath(name, fallback string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	return ""
}
