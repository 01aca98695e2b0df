package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/daemon/api"
)

// containerHelp says how connect and disconnect find CONTAINER. underlayd
// tries the first two; the CLI asks podman itself, in the user's
// environment (their podman, their storage configuration), only when
// underlayd found nothing.
const containerHelp = `CONTAINER is looked for, in this order:
  1. among underlay's endpoints, as endpoint ls names it: NAMESPACE/ID, ID, or a unique prefix of ID;
  2. in the containerd underlayd follows (--containerd-address): NAMESPACE/ID, or an ID or nerdctl
     name in namespace "default"; its endpoints are released with its task, like the hook's;
  3. in podman (podman container inspect, as this command's user): a name or an ID.
--pid PID (or --netns PATH) names the container by its network namespace instead: a namespace
underlay already has endpoints in is their container; else CONTAINER, if given, names it, and
otherwise it is netns-<inode>. underlayd refuses its own (the host's) namespace.`

func connectCommand() *cli.Command {
	return &cli.Command{
		Name:        "connect",
		Usage:       "attach a running container to one more network (its next ethN)",
		ArgsUsage:   "NETWORK CONTAINER | --pid PID NETWORK [CONTAINER]",
		Description: containerHelp,
		Action:      networkConnect,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ip", Usage: "static IPv4 address"},
			&cli.StringFlag{Name: "ip6", Usage: "static IPv6 address"},
			&cli.StringFlag{Name: "mac-address", Usage: "static MAC (macvlan)"},
			&cli.IntFlag{Name: "pid", Usage: "a process of the container: its network namespace is the container's"},
			&cli.StringFlag{Name: "netns", Usage: "the container's network namespace (/proc/PID/ns/net, /run/netns/NAME)"},
		},
	}
}

func disconnectCommand() *cli.Command {
	return &cli.Command{
		Name:        "disconnect",
		Usage:       "take a running container off a network (that interface only)",
		ArgsUsage:   "NETWORK CONTAINER | --pid PID NETWORK",
		Description: containerHelp,
		Action:      networkDisconnect,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "netns", Usage: "the container's network namespace"},
			&cli.IntFlag{Name: "pid", Usage: "a process of the container: its network namespace is the container's"},
		},
	}
}

// connectRequest reads NETWORK [CONTAINER] and the flags both commands
// share.
func connectRequest(c *cli.Context, cmd string) (api.ConnectRequest, error) {
	req := api.ConnectRequest{Network: c.Args().First(), Container: c.Args().Get(1), Pid: c.Int("pid"),
		Netns: c.String("netns")}
	byNetns := req.Pid != 0 || req.Netns != ""
	switch {
	case c.NArg() == 2, c.NArg() == 1 && byNetns:
		return req, nil
	case c.NArg() > 2:
		return req, fmt.Errorf("%q takes NETWORK and one CONTAINER, got %d arguments", cmd, c.NArg())
	}
	return req, fmt.Errorf("%q needs NETWORK and CONTAINER (or --pid PID)", cmd)
}

func networkConnect(c *cli.Context) error {
	req, err := connectRequest(c, "network connect")
	if err != nil {
		return err
	}
	req.IP, req.IP6, req.MAC = c.String("ip"), c.String("ip6"), c.String("mac-address")
	var ep api.Endpoint
	err = networkDo(c, "POST", req.Network, "connect", req, &ep)
	if askPodman(err, req) {
		id, pid, perr := podmanContainer(req.Container, true)
		if perr != nil {
			return fmt.Errorf("%w; %w", err, perr)
		}
		req.Container, req.Pid = id, pid
		if err = networkDo(c, "POST", req.Network, "connect", req, &ep); err != nil {
			return fmt.Errorf("podman container %s: %w", c.Args().Get(1), err)
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", ep.IfName, strings.Join(ep.Addresses, ","), ep.MAC)
	return nil
}

func networkDisconnect(c *cli.Context) error {
	req, err := connectRequest(c, "network disconnect")
	if err != nil {
		return err
	}
	err = networkDo(c, "POST", req.Network, "disconnect", req, nil)
	if askPodman(err, req) {
		// A stopped container is fine: underlay knows it by its full id.
		id, _, perr := podmanContainer(req.Container, false)
		if perr != nil {
			return fmt.Errorf("%w; %w", err, perr)
		}
		req.Container = id
		if err = networkDo(c, "POST", req.Network, "disconnect", req, nil); err != nil {
			return fmt.Errorf("podman container %s: %w", c.Args().Get(1), err)
		}
	}
	return err
}

// askPodman says whether podman may know a container underlayd did not
// find: podman names have no "/" (that is a containerd namespace).
func askPodman(err error, req api.ConnectRequest) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Code == 404 && req.Pid == 0 && req.Netns == "" &&
		req.Container != "" && !strings.Contains(req.Container, "/")
}

// podmanContainer returns the full id and the pid of podman's container
// ref (a name or an id); with running, a stopped one is an error.
func podmanContainer(ref string, running bool) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", "container", "inspect", "--format", "{{.Id}} {{.State.Pid}}", ref)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return parsePodman(ref, out, stderr.String(), err, running)
}

// parsePodman reads what podmanContainer ran: one line "ID PID", or an
// error on stderr ("Error: no such container web").
func parsePodman(ref string, out []byte, stderr string, err error, running bool) (string, int, error) {
	if errors.Is(err, exec.ErrNotFound) {
		return "", 0, errors.New("no podman to ask (not on PATH)")
	}
	if err != nil {
		msg := strings.TrimSpace(stderr)
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		msg = strings.TrimPrefix(msg, "Error: ")
		switch {
		case strings.Contains(msg, "no such container"):
			return "", 0, fmt.Errorf("podman has no container %s", ref)
		case msg == "":
			msg = err.Error()
		}
		return "", 0, fmt.Errorf("podman container inspect %s: %s", ref, msg)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return "", 0, fmt.Errorf("podman container inspect %s: unexpected output %q", ref, bytes.TrimSpace(out))
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		return "", 0, fmt.Errorf("podman container inspect %s: pid %q: %w", ref, f[1], err)
	}
	if running && pid <= 0 {
		return "", 0, fmt.Errorf("podman container %s is not running", ref)
	}
	return f[0], pid, nil
}
