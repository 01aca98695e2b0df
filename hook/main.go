// Command underlay-hook is the OCI hook: at createRuntime it asks underlayd
// to attach the container to the networks its annotations name; at
// poststop it asks underlayd to detach it. It reads the OCI state on stdin,
// never touches the kernel or the database, and stays small because it
// runs on every container start.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/underlay/underlay/daemon/api"
)

// maxState bounds stdin: an OCI state is a few KiB.
const maxState = 1 << 20

// state is the OCI runtime state the hook reads on stdin. It is decoded by
// package api rather than encoding/json, which alone would add about a
// millisecond to every container start.
type state = api.OCIState

func main() {
	if err := run(os.Args[1:], os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "underlay-hook:", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

const usage = "usage: underlay-hook [--socket PATH] [createRuntime|poststop] < OCI state"

func run(args []string, stdin io.Reader) error {
	stage, socket, err := parseArgs(args)
	if err != nil {
		return err
	}
	if stage == "help" {
		fmt.Println(usage)
		return nil
	}
	st, err := readState(stdin)
	if err != nil {
		return err
	}
	if stage == "" {
		// The runtime spec's states, spelled out: its package would run
		// fmt.Sprintf at every start of the hook for its Version.
		switch st.Status {
		case "creating", "created":
			stage = "createRuntime"
		case "stopped":
			stage = "poststop"
		default:
			return fmt.Errorf("no stage given and container status %q names none", st.Status)
		}
	}
	ann, err := annotations(st)
	if err != nil {
		return err
	}
	nets, err := api.ParseAnnotations(ann)
	if errors.Is(err, api.ErrNoNetwork) {
		return nil
	}
	if err != nil {
		return err
	}
	c := &api.Client{Socket: socket}
	ns := namespace(st, ann)
	if stage == "poststop" {
		req := api.DetachRequest{Namespace: ns, ContainerID: st.ID, Pid: st.Pid}
		_, err := c.Call("POST", "/detach", api.EncodeDetachRequest(req))
		return err
	}
	req := api.AttachRequest{Namespace: ns, ContainerID: st.ID, Pid: st.Pid, Networks: nets,
		Name: api.ContainerName(ann), Bundle: st.Bundle}
	_, err = c.Call("POST", "/attach", api.EncodeAttachRequest(req))
	return err
}

// parseArgs reads the stage (empty: go by the state's status) and
// underlayd's socket: --socket, else $UNDERLAY_SOCKET, else the default.
// No flag package: the hook runs at every container start.
func parseArgs(args []string) (stage, socket string, err error) {
	socket = os.Getenv("UNDERLAY_SOCKET")
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--socket" || a == "-socket":
			if i+1 == len(args) || args[i+1] == "" {
				return "", "", fmt.Errorf("%s needs a path; %s", a, usage)
			}
			i++
			socket = args[i]
		case strings.HasPrefix(a, "--socket=") || strings.HasPrefix(a, "-socket="):
			if socket = a[strings.IndexByte(a, '=')+1:]; socket == "" {
				return "", "", fmt.Errorf("%s needs a path; %s", a, usage)
			}
		case a == "-h" || a == "--help" || a == "help":
			return "help", "", nil
		case a == "createRuntime" || a == "poststop":
			if stage != "" {
				return "", "", fmt.Errorf("two stages given, %s and %s; %s", stage, a, usage)
			}
			stage = a
		case strings.HasPrefix(a, "-"):
			return "", "", fmt.Errorf("unknown flag %s; %s", a, usage)
		default:
			return "", "", fmt.Errorf("unknown stage %q: want createRuntime or poststop", a)
		}
	}
	return stage, socket, nil
}

func readState(r io.Reader) (state, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxState+1))
	if err != nil {
		return state{}, fmt.Errorf("read OCI state from stdin: %w", err)
	}
	if len(b) > maxState {
		return state{}, fmt.Errorf("OCI state on stdin is larger than %d bytes", maxState)
	}
	st, err := api.DecodeOCIState(b)
	if err != nil {
		return st, fmt.Errorf("malformed OCI state on stdin: %w", err)
	}
	if st.ID == "" {
		return st, errors.New("malformed OCI state on stdin: no container id")
	}
	return st, nil
}

// annotations come from the state; runtimes that leave them out of the
// state (older runc) still have them in the bundle's config.json.
func annotations(st state) (map[string]string, error) {
	if _, ok := st.Annotations[api.AnnotationNetwork]; ok || st.Bundle == "" {
		return st.Annotations, nil
	}
	b, err := os.ReadFile(filepath.Join(st.Bundle, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st.Annotations, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bundle config: %w", err)
	}
	ann, err := api.DecodeAnnotations(b)
	if err != nil {
		return nil, fmt.Errorf("malformed %s: %w", filepath.Join(st.Bundle, "config.json"), err)
	}
	return ann, nil
}

// namespace finds the containerd namespace: containerd's shims keep bundles
// at <state>/io.containerd.runtime.v2.task/<namespace>/<id>; nerdctl also
// records it in an annotation. Other runtimes have none.
func namespace(st state, ann map[string]string) string {
	const marker = "/io.containerd.runtime.v2.task/"
	if i := strings.Index(st.Bundle, marker); i >= 0 {
		rest := st.Bundle[i+len(marker):]
		if ns, id, ok := strings.Cut(rest, "/"); ok && strings.TrimSuffix(id, "/") == st.ID {
			return ns
		}
	}
	return ann["nerdctl/namespace"]
}
