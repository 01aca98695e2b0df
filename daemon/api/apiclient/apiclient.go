// Package apiclient is the JSON side of api.Client for the CLI and the
// tests: any request and answer type, through encoding/json. It lives
// apart from package api because the hook and underlay-cni import api and
// must not link encoding/json (see api/wire.go).
package apiclient

import (
	"encoding/json"
	"fmt"

	"github.com/underlay/underlay/daemon/api"
)

// Do sends in (if non-nil) as JSON and decodes the answer into out (if
// non-nil). Errors are one line, ready to print; a non-2xx answer is an
// *api.StatusError.
func Do(c *api.Client, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	resp, err := c.Call(method, path, body)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return fmt.Errorf("decode answer from underlayd: %w", err)
		}
	}
	return nil
}
