package link

import (
	"net"
	"net/netip"
	"time"
)

// Host is the kernel of the machine underlayd runs on, as one value: each
// method is the package function of the same name. daemon/network takes
// its kernel work through an interface that Host implements and a fake of
// the tests implements too.
type Host struct{}

func (Host) OpenPid(pid int) (*Netns, error)      { return OpenPid(pid) }
func (Host) OpenPath(path string) (*Netns, error) { return OpenPath(path) }
func (Host) FindNetns(inode, cookie uint64, hintPid int) *Netns {
	return FindNetns(inode, cookie, hintPid)
}
func (Host) LiveNetns() map[uint64]string                          { return LiveNetns() }
func (Host) Lookup(name string) (Info, error)                      { return Lookup(name) }
func (Host) LookupParent(name string) (Info, error)                { return LookupParent(name) }
func (Host) Probe(kind string) error                               { return Probe(kind) }
func (Host) CreateVLAN(base string, vid int, name string) error    { return CreateVLAN(base, vid, name) }
func (Host) CreateDummy(name string) error                         { return CreateDummy(name) }
func (Host) Delete(name string) error                              { return Delete(name) }
func (Host) CreateSlave(ns *Netns, s Slave) error                  { return CreateSlave(ns, s) }
func (Host) Strip(ns *Netns, name string) (bool, error)            { return Strip(ns, name) }
func (Host) DeleteSlave(ns *Netns, names ...string) error          { return DeleteSlave(ns, names...) }
func (Host) HasSlave(ns *Netns, name string, addrs []string) error { return HasSlave(ns, name, addrs) }
func (Host) DeleteSlaveMatching(ns *Netns, name, mac string, addrs []string) error {
	return DeleteSlaveMatching(ns, name, mac, addrs)
}
func (Host) Announce(parent int, mac net.HardwareAddr, addrs []netip.Addr) error {
	return AnnounceOnParent(parent, mac, addrs)
}
func (Host) Answering(parent string, addrs []netip.Addr, wait time.Duration) (map[netip.Addr]bool, error) {
	return Answering(parent, addrs, wait)
}

// NamedNetns returns a handle that names a namespace by inode and cookie
// without holding one open, for a fake kernel: Close and Dup work on it,
// and the functions of this package refuse it.
func NamedNetns(inode, cookie uint64) *Netns { return &Netns{Inode: inode, Cookie: cookie} }
