// Command devcluster runs a local Kubernetes control plane (etcd +
// kube-apiserver from the envtest cache) with Cairn's CRDs installed, writes
// an admin kubeconfig, and runs until interrupted. `make dev` uses it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/cairn-platform/cairn/internal/testenv"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", ".dev/kubeconfig", "Where to write the admin kubeconfig.")
	flag.Parse()

	if err := run(*kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

func run(kubeconfig string) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "devcluster: stopping:", err)
		}
	}()
	dir := filepath.Dir(kubeconfig)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path, err := env.Kubeconfig(dir)
	if err != nil {
		return err
	}
	if path != kubeconfig {
		if err := os.Rename(path, kubeconfig); err != nil {
			return err
		}
	}
	defer func() { _ = os.Remove(kubeconfig) }()
	fmt.Printf("devcluster: kube-apiserver at %s, kubeconfig %s\n", env.Config.Host, kubeconfig)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Println("devcluster: stopping etcd and kube-apiserver")
	return nil
}
