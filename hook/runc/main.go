// Command underlay-runc is a runc-compatible wrapper. On create and run it
// adds underlay's createRuntime and poststop hooks to bundles whose
// config.json asks for an underlay network, then execs the real runtime
// with the same arguments. It is how containerd and nerdctl, which have no
// hooks.d, get the hook: `--runtime /usr/local/bin/underlay-runc`.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/underlay/underlay/daemon/api"
)

func main() {
	if err := run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "underlay-runc:", err)
		os.Exit(1)
	}
}

func run(argv []string) error {
	runtime, err := realRuntime()
	if err != nil {
		return err
	}
	if bundle, ok := bundleOf(argv[1:]); ok {
		if err := addHooks(filepath.Join(bundle, "config.json")); err != nil {
			return err
		}
	}
	args := append([]string{filepath.Base(runtime)}, argv[1:]...)
	return syscall.Exec(runtime, args, os.Environ())
}

// realRuntime resolves UNDERLAY_RUNTIME (default runc), refusing itself.
func realRuntime() (string, error) {
	name := os.Getenv("UNDERLAY_RUNTIME")
	if name == "" {
		name = "runc"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("runtime %s not found (set UNDERLAY_RUNTIME): %w", name, err)
	}
	self, _ := os.Executable()
	if a, b := evalPath(path), evalPath(self); a == b {
		return "", fmt.Errorf("runtime %s is underlay-runc itself; set UNDERLAY_RUNTIME to the real runtime", path)
	}
	return path, nil
}

func evalPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// globalWithValue are runc's global flags that take a separate value.
var globalWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

// bundleOf finds the bundle of a create or run command.
func bundleOf(args []string) (string, bool) {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if globalWithValue[args[i]] {
			i++
		}
		i++
	}
	if i >= len(args) || args[i] != "create" && args[i] != "run" {
		return "", false
	}
	bundle := "."
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--bundle" || a == "-b":
			if j+1 < len(rest) {
				bundle = rest[j+1]
			}
			j++
		case strings.HasPrefix(a, "--bundle="):
			bundle = strings.TrimPrefix(a, "--bundle=")
		case strings.HasPrefix(a, "-b="):
			bundle = strings.TrimPrefix(a, "-b=")
		}
	}
	return bundle, true
}

// addHooks adds the hooks to an annotated config.json, keeping every other
// field as it was. It does nothing to a bundle without the annotation or
// one that already has the hooks.
func addHooks(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // let the runtime report the missing bundle
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("malformed %s: not a JSON object", path)
	}
	var ann map[string]string
	if a, ok := spec["annotations"]; ok {
		if err := json.Unmarshal(a, &ann); err != nil {
			return fmt.Errorf("malformed %s: \"annotations\" must map names to strings", path)
		}
	}
	if _, ok := ann[api.AnnotationNetwork]; !ok {
		// Nothing to add, unless other io.underlay.* keys say the
		// container was meant to have a network: refuse it then.
		if err := api.StrayAnnotations(ann); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	hooks := map[string][]hook{}
	if h, ok := spec["hooks"]; ok {
		if err := json.Unmarshal(h, &hooks); err != nil {
			return fmt.Errorf("malformed %s: \"hooks\" must map stages to lists of hooks", path)
		}
	}
	hookPath, err := hookBinary()
	if err != nil {
		return err
	}
	env := slices.Clone(api.HookEnv)
	if s := os.Getenv("UNDERLAY_SOCKET"); s != "" {
		env = append(env, "UNDERLAY_SOCKET="+s)
	}
	changed := false
	for _, stage := range []string{"createRuntime", "poststop"} {
		if hasHook(hooks[stage], hookPath) {
			continue
		}
		hooks[stage] = append(hooks[stage], hook{Path: hookPath, Args: []string{"underlay-hook", stage}, Env: env})
		changed = true
	}
	if !changed {
		return nil
	}
	if spec["hooks"], err = json.Marshal(hooks); err != nil {
		return err
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return writeAtomic(path, out)
}

type hook struct {
	Path    string   `json:"path"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	Timeout *int     `json:"timeout,omitempty"`
}

func hasHook(hs []hook, path string) bool {
	for _, h := range hs {
		if h.Path == path {
			return true
		}
	}
	return false
}

// hookBinary is UNDERLAY_HOOK, else underlay-hook next to this binary.
func hookBinary() (string, error) {
	if p := os.Getenv("UNDERLAY_HOOK"); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own path: %w", err)
	}
	p := filepath.Join(filepath.Dir(self), "underlay-hook")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("hook %s not found (set UNDERLAY_HOOK): %w", p, err)
	}
	return p, nil
}

func writeAtomic(path string, b []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".underlay.tmp"
	if err := os.WriteFile(tmp, b, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
