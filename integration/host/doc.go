// Package host holds underlay's privileged tests on this machine's kernel:
// the real underlayd, CLI and hook against veth parents in throwaway
// namespaces, with fake containers. They run with UNDERLAY_PRIVILEGED=1 as
// root (make test-privileged); names start with "ulh".
package host
