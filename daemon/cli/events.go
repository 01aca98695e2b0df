package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/daemon/api"
)

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "stream what underlayd does as it happens: attach, detach (and what released it), reconcile, parents, networks",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "network=NAME or type=TYPE (attach, detach, reconcile, parent-create, parent-remove, network-create, network-remove, lease-lost); repeatable"},
			&cli.StringFlag{Name: "format", Usage: "text (default), json (one object per line), or a Go template: '{{.Type}} {{.Container}}'"},
		},
		Action: events,
	}
}

func events(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf(`"events" takes no arguments (got %q); filter with --filter network=NAME`, c.Args().First())
	}
	var out output
	switch f := c.String("format"); f {
	case "", "text", "json":
	default:
		if !strings.Contains(f, "{{") {
			return fmt.Errorf("--format %q: want text, json or a Go template such as '{{.Type}} {{.Container}}'", f)
		}
		var err error
		if out, err = parseFormat(f); err != nil {
			return err
		}
	}
	q := url.Values{}
	for _, f := range c.StringSlice("filter") {
		q.Add("filter", f)
	}
	body, err := client(c).Stream("/events?" + q.Encode())
	if err != nil {
		return err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	w := bufio.NewWriter(os.Stdout)
	for sc.Scan() {
		switch {
		case c.String("format") == "json":
			w.Write(sc.Bytes())
			w.WriteByte('\n')
		default:
			var e api.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return fmt.Errorf("decode event from underlayd: %w", err)
			}
			if out.tmpl != nil {
				if err := out.tmpl.Execute(w, e); err != nil {
					return fmt.Errorf("--format: %w", err)
				}
				w.WriteByte('\n')
			} else {
				w.WriteString(eventLine(e) + "\n")
			}
		}
		// A tail is read as it comes: flush each event.
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read events from underlayd: %w", err)
	}
	return errors.New("underlayd closed the event stream (it stopped or restarted)")
}

// eventLine is an event as one line of text: its time and type, then
// what is set of it as key=value.
func eventLine(e api.Event) string {
	var b strings.Builder
	b.WriteString(e.Time + " " + e.Type)
	kv := func(k, v string) {
		if v != "" {
			b.WriteString(" " + k + "=" + v)
		}
	}
	kv("network", e.Network)
	kv("driver", e.Driver)
	kv("container", e.Container)
	kv("ifname", e.IfName)
	kv("addresses", strings.Join(e.Addresses, ","))
	kv("mac", e.MAC)
	kv("parent", e.Parent)
	kv("path", e.Path)
	if e.Type == api.EventReconcile {
		kv("released", strconv.Itoa(e.Released))
	}
	if e.Dropped > 0 {
		kv("dropped", strconv.Itoa(e.Dropped))
	}
	kv("result", e.Result)
	if e.Seconds > 0 {
		kv("took", time.Duration(e.Seconds*float64(time.Second)).Round(time.Microsecond).String())
	}
	if e.Error != "" {
		kv("error", strconv.Quote(e.Error))
	}
	return b.String()
}
