package main

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"underlay network create pub_net -d macvlan --subnet 10.0.0.0/24 -o parent=eth1",
			"underlay network create -d macvlan --subnet 10.0.0.0/24 -o parent=eth1 pub_net"},
		{"underlay --socket /s network create --ipv6 pub_net --internal --subnet=2001:db8::/64",
			"underlay --socket /s network create --ipv6 --internal --subnet=2001:db8::/64 pub_net"},
		{"underlay network inspect a b", "underlay network inspect a b"},
		{"underlay network rm a -- -b", "underlay network rm a -- -b"},
		{"underlay network create n --nonsense x", "underlay network create --nonsense n x"},
		{"underlay host reclaim h2", "underlay host reclaim h2"},
		{"underlay", "underlay"},
	} {
		if got := strings.Join(flagsFirst(newApp(), strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

// Every command that takes arguments parses its flags the same after the
// arguments as before them, as Docker's CLI does.
func TestFlagsAnywhere(t *testing.T) {
	app := newApp()
	type parsed struct {
		args  []string
		flags map[string]any
	}
	var got parsed
	var leaves []string
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(append([]string{}, path...), c.Name)
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			flags := c.Flags
			c.Action = func(ctx *cli.Context) error {
				got = parsed{args: ctx.Args().Slice(), flags: map[string]any{}}
				for _, f := range flags {
					got.flags[f.Names()[0]] = ctx.Value(f.Names()[0])
				}
				return nil
			}
			if c.ArgsUsage != "" {
				leaves = append(leaves, strings.Join(p, " "))
			}
		}
	}
	walk(nil, app.Commands)
	app.ExitErrHandler = func(*cli.Context, error) {}
	run := func(args ...string) parsed {
		got = parsed{}
		if err := app.Run(flagsFirst(app, append([]string{"underlay"}, args...))); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return got
	}
	if len(leaves) < 5 {
		t.Fatalf("only %d commands with arguments found: %v", len(leaves), leaves)
	}
	for _, leaf := range leaves {
		path := strings.Fields(leaf)
		c := app.Command(path[0])
		for _, n := range path[1:] {
			c = c.Command(n)
		}
		var flag []string
		for _, f := range c.Flags {
			if _, isBool := f.(*cli.BoolFlag); isBool {
				flag = []string{"--" + f.Names()[0]}
			} else {
				flag = []string{"--" + f.Names()[0], "v=1"}
				break
			}
		}
		before := run(append(append(path, flag...), "arg1")...)
		after := run(append(append(path, "arg1"), flag...)...)
		if !reflect.DeepEqual(before, after) || len(after.args) != 1 {
			t.Errorf("%s: flags after the argument parsed as %+v, before it as %+v", leaf, after, before)
		}
	}
}

// A mistyped flag or command is one line naming it (and where the help
// is), never the help itself after "Incorrect Usage".
func TestUsageErrorsAreOneLine(t *testing.T) {
	for args, want := range map[string]string{
		"network create --bogus x": "network create: flag provided but not defined: -bogus (see 'underlay network create --help')",
		"nosuchcmd":                "unknown command \"nosuchcmd\": want network, endpoint, host, events, doctor",
		"network bogus":            "network: unknown command \"bogus\": want create, ls,",
		"--bogus network ls":       "flag provided but not defined: -bogus (see 'underlay --help')",
		"endpoint ls --format":     "endpoint ls: flag needs an argument: -format",
	} {
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := app.Run(flagsFirst(app, append([]string{"underlay"}, strings.Fields(args)...)))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("underlay %s: %v, want one line with %q", args, err, want)
		}
	}
}
