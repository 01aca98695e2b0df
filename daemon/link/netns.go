package link

import "github.com/vishvananda/netns"

func netnsHandle(ns *Netns) netns.NsHandle { return netns.NsHandle(ns.Fd()) }
