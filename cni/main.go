// Command underlay-cni is underlay's CNI plugin (spec 1.1.0): installed as
// "underlay" in the CNI bin dir, it hands ADD, DEL, CHECK, STATUS and GC
// to underlayd over its socket, through the same lean client as the hook,
// and never touches netlink or the state itself. So nerdctl, podman's CNI
// backend, containerd's CRI and Multus get underlay's networks, with the
// same endpoints, releases and errors as the hook's.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/underlay/underlay/daemon/api"
)

// specVersion is the newest CNI spec the plugin speaks.
const specVersion = "1.1.0"

var supported = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

func main() {
	os.Exit(run(os.Getenv, os.Stdin, os.Stdout))
}

// run is one invocation: env is the CNI_* environment, stdin the network
// configuration. It writes the result, or a CNI error object, to out and
// returns the exit status.
func run(env func(string) string, stdin io.Reader, out io.Writer) int {
	cmd := env("CNI_COMMAND")
	if cmd == "VERSION" {
		return write(out, versionResult{CNIVersion: specVersion, SupportedVersions: supported}.encode())
	}
	conf, err := readConfig(stdin)
	if err != nil {
		return fail(out, conf.CNIVersion, err)
	}
	c := &api.Client{Socket: conf.socket(env)}
	switch cmd {
	case "ADD":
		req, err := conf.request(env, true)
		if err != nil {
			return fail(out, conf.CNIVersion, err)
		}
		body, err := c.Call("POST", "/cni/add", api.EncodeCNIRequest(req))
		if err != nil {
			return fail(out, conf.CNIVersion, describe(conf, "ADD", err))
		}
		ep, err := api.DecodeCNIAdded(body)
		if err != nil {
			return fail(out, conf.CNIVersion, &cniError{Code: 999, Msg: fmt.Sprintf("network %s: ADD: underlayd's answer: %v", conf.network(), err)})
		}
		return write(out, newResult(conf.CNIVersion, ep, req.Netns).encode())
	case "DEL":
		req, err := conf.request(env, false)
		if err != nil {
			return fail(out, conf.CNIVersion, err)
		}
		if _, err := c.Call("POST", "/cni/del", api.EncodeCNIRequest(req)); err != nil {
			return fail(out, conf.CNIVersion, describe(conf, "DEL", err))
		}
		return 0
	case "CHECK":
		if conf.CNIVersion == "0.3.0" || conf.CNIVersion == "0.3.1" {
			// The spec has CHECK from 0.4.0 on.
			return fail(out, conf.CNIVersion, &cniError{Code: 2, Msg: fmt.Sprintf("network %s: CHECK needs cniVersion 0.4.0 or later, and the config says %s", conf.network(), conf.CNIVersion)})
		}
		req, err := conf.request(env, true)
		if err != nil {
			return fail(out, conf.CNIVersion, err)
		}
		if _, err := c.Call("POST", "/cni/check", api.EncodeCNIRequest(req)); err != nil {
			return fail(out, conf.CNIVersion, describe(conf, "CHECK", err))
		}
		return 0
	case "STATUS":
		// Ready for an ADD: underlayd answers, and knows the network.
		if _, err := c.Call("GET", "/networks/"+conf.network(), nil); err != nil {
			return fail(out, conf.CNIVersion, &cniError{Code: 50, Msg: fmt.Sprintf("network %s: underlay is not available: %v", conf.network(), err)})
		}
		return 0
	case "GC":
		gc := api.CNIGC{Network: conf.network(), Valid: []api.CNIAttachment{}}
		for _, a := range conf.ValidAttachments {
			gc.Valid = append(gc.Valid, api.CNIAttachment{ContainerID: a.ContainerID, IfName: a.IfName})
		}
		if _, err := c.Call("POST", "/cni/gc", api.EncodeCNIGC(gc)); err != nil {
			return fail(out, conf.CNIVersion, describe(conf, "GC", err))
		}
		return 0
	case "":
		return fail(out, conf.CNIVersion, &cniError{Code: 4, Msg: "CNI_COMMAND is not set: underlay-cni is a CNI plugin, run by a container runtime"})
	}
	return fail(out, conf.CNIVersion, &cniError{Code: 4, Msg: fmt.Sprintf("CNI_COMMAND=%s: want ADD, DEL, CHECK, STATUS, GC or VERSION", cmd)})
}

// cniError is a failure, written out as the spec's error object.
type cniError struct {
	Code    int
	Msg     string
	Details string
}

func (e *cniError) Error() string { return e.Msg }

// describe turns a failed call into a CNI error naming the network and
// the cause, with a code the runtime can act on.
func describe(conf config, verb string, err error) *cniError {
	var se *api.StatusError
	switch {
	case errors.Is(err, api.ErrDaemonDown):
		return &cniError{Code: 11, Msg: fmt.Sprintf("network %s: %s: %v", conf.network(), verb, err),
			Details: "start underlayd (systemctl start underlayd), or set \"socket\" in the network config"}
	case errors.As(err, &se):
		code := 999
		switch se.Code {
		case 400:
			code = 7 // invalid network configuration or arguments
		case 404:
			code = 3 // unknown network, or no such attachment
			if verb == "ADD" {
				code = 7
			}
		case 409:
			code = 100 // the address or the parent is taken
		case 507:
			code = 101 // no free address
		case 504:
			code = 11 // no DHCP lease yet: try again later
		}
		msg := se.Msg
		if !strings.Contains(msg, "network "+conf.network()) {
			msg = "network " + conf.network() + ": " + msg
		}
		return &cniError{Code: code, Msg: msg}
	}
	return &cniError{Code: 999, Msg: fmt.Sprintf("network %s: %s: %v", conf.network(), verb, err)}
}

// fail writes err as a CNI error object and returns the exit status 1.
func fail(out io.Writer, version string, err error) int {
	var ce *cniError
	if !errors.As(err, &ce) {
		ce = &cniError{Code: 999, Msg: err.Error()}
	}
	if version == "" {
		version = specVersion
	}
	write(out, errorResult{CNIVersion: version, Code: ce.Code, Msg: ce.Msg, Details: ce.Details}.encode())
	return 1
}

func write(out io.Writer, b []byte) int {
	out.Write(append(b, '\n'))
	return 0
}
