// Package multihost tests global networks: several hosts, each a network
// namespace with its own underlayd, on one LAN, sharing addresses through
// etcd members the tests start (Debian's etcd-server). Names start with
// ulmh. Run by make test-privileged.
package multihost
