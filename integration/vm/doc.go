// Package vm holds tests that need kernel features the development hosts
// lack (ipvlan, 802.1q VLANs, dummy links, module loading). They run inside
// a qemu VM booting Debian's own kernel: see run.sh and README.md, and use
// "make test-vm". Outside the VM (env UNDERLAY_VM unset) they skip.
package vm
