package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/daemon/api"
)

// formatUsage is --format's help, with examples on fields the list has.
func formatUsage(field1, field2 string) string {
	return fmt.Sprintf("table (default), json, or a Go template as in docker: '{{.%s}}', 'table {{.%s}}\\t{{.%s}}'", field1, field1, field2)
}

// output is how a list command prints: its --format, as in docker.
type output struct {
	json  bool
	table bool // the built-in table, or a "table ..." template with headers
	tmpl  *template.Template
	head  string
}

var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// fieldRef is an action of a template, for the headers of "table ...":
// its first field names the column ({{join .Addresses ","}} ->
// ADDRESSES).
var fieldRef = regexp.MustCompile(`{{[^}]*?\.(\w+)[^}]*}}`)

func parseFormat(f string) (output, error) {
	switch f {
	case "", "table":
		return output{table: true}, nil
	case "json":
		return output{json: true}, nil
	}
	if !strings.Contains(f, "{{") {
		// A template without an action prints itself on every row: a
		// typo ("yaml", "jsno") is far likelier than that wish.
		return output{}, fmt.Errorf("--format %q: want table, json or a Go template such as '{{.Name}}'", f)
	}
	o := output{}
	if rest, ok := strings.CutPrefix(f, "table "); ok {
		o.table, f = true, rest
		o.head = fieldRef.ReplaceAllStringFunc(f, func(m string) string {
			return headerOf(fieldRef.FindStringSubmatch(m)[1])
		})
	}
	t, err := template.New("format").Funcs(templateFuncs).Parse(unescape(f))
	if err != nil {
		return o, fmt.Errorf("--format: %w", err)
	}
	o.tmpl = t
	o.head = unescape(o.head)
	return o, nil
}

// headerOf turns a field name into a column header: ContainerID ->
// CONTAINER ID.
func headerOf(field string) string {
	var b strings.Builder
	for i, r := range field {
		if i > 0 && r >= 'A' && r <= 'Z' && !(field[i-1] >= 'A' && field[i-1] <= 'Z') {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// unescape lets a shell-quoted '\t' and '\n' mean tab and newline, as
// docker's --format does.
func unescape(s string) string {
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(s)
}

// printList prints items as --quiet (name's line each), --format json or
// a --format template (over row of each) ask, and reports whether it did:
// false leaves the built-in table to the caller.
func printList[T, R any](c *cli.Context, items []T, name func(T) string, row func(T) R) (bool, error) {
	out, err := parseFormat(c.String("format"))
	switch {
	case err != nil:
		return true, err
	case c.Bool("quiet"):
		for _, it := range items {
			fmt.Println(name(it))
		}
		return true, nil
	case out.json:
		return true, printJSON(items)
	case out.tmpl != nil:
		rows := make([]R, len(items))
		for i, it := range items {
			rows[i] = row(it)
		}
		return true, printTemplate(out, rows)
	}
	return false, nil
}

// printTemplate prints each row through o's template, one line each,
// under a header for "table ...".
// Nothing is printed unless every row renders: a bad field is one line,
// not a header and then the error.
func printTemplate[T any](o output, rows []T) error {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
	if o.head != "" {
		fmt.Fprintln(w, o.head)
	}
	for _, r := range rows {
		if err := o.tmpl.Execute(w, r); err != nil {
			return templateErr(err)
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := os.Stdout.Write(b.Bytes())
	return err
}

// noField is text/template's word for a field a row does not have.
var noField = regexp.MustCompile(`executing "format" at <[^>]*>: can't evaluate field (\w+) in type \S+`)

// templateErr says a template's failure without Go's type names.
func templateErr(err error) error {
	if m := noField.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("--format: no field %s (the fields are those --format json shows, as Go names: {{.Name}}, {{.InUse}}, ...)", m[1])
	}
	return fmt.Errorf("--format: %w", err)
}

// networkRow is a network as templates see it: its fields, and its usage
// added up.
type networkRow struct{ api.Network }

// InUse adds up the addresses held in every subnet.
func (n networkRow) InUse() uint64 {
	var sum uint64
	for _, u := range n.Usage {
		sum += u.InUse
	}
	return sum
}

// Free adds up the addresses left of each family, IPv4 first ("252 +
// 2^64" for dual stack, where one sum would hide the IPv4 count), or "-"
// where a DHCP server decides.
func (n networkRow) Free() string {
	var sum [2]float64
	var has [2]bool
	for _, u := range n.Usage {
		if u.Free == nil {
			return "-"
		}
		fam := 0
		if strings.Contains(u.Subnet, ":") {
			fam = 1
		}
		sum[fam] += *u.Free
		has[fam] = true
	}
	var parts []string
	for fam := range sum {
		if has[fam] {
			parts = append(parts, count(sum[fam]))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " + ")
}

// count prints an address count exactly, or as a power of two where it is
// an IPv6 subnet's size (2^64 less a few is "2^64").
func count(f float64) string {
	if f < 1e12 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return "2^" + strconv.Itoa(int(math.Round(math.Log2(f))))
}
